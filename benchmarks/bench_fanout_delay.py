"""Deploy 20 MB to 8 devices against 1, each device behind its own delayed, rate-limited link.

On loopback the fan-out goal (8 devices <= 1.5x one) cannot show on 2 cores: the 8 uploads
are CPU-bound (bench_deploy.py reports the CPU seconds). Here each "device" (an OpenSSH sshd
running the real agent; `admit` verifies every byte) is reached through a link of its own
that delays every byte by 20 ms each way (40 ms round trip) and carries at most 100 Mbit/s
each way, so one upload waits on its link as over a LAN or Wi-Fi, and 8 links in parallel
can overlap their waits. This host's kernel has no `sch_netem` (only htb, tbf and pfifo
qdiscs), so the link is a user-space relay per device (tests/support/delay_link.py, its own
process: its CPU is reported apart from the host's and the devices').

Each round removes the model from the devices' spools, then times `deploy` to device 1 and
to all 8 (order alternating by round). Reported: the ratio of the medians with a bootstrap
95 % interval over rounds, the per-round range, and CPU seconds per device (host process;
each sshd with what it forked; the relays), so a ratio above the goal reads as CPU (2
cores) or as waiting.

    BENCH_LINK_ROUNDS (default 4), BENCH_LINK_DELAY_MS (20, one way), BENCH_LINK_MBIT (100)
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Ratio

REPO = Path(__file__).resolve().parent.parent
DEVICES = 8
ROUNDS = int(os.environ.get("BENCH_LINK_ROUNDS", "4"))
DELAY_MS = float(os.environ.get("BENCH_LINK_DELAY_MS", "20"))
MBIT = float(os.environ.get("BENCH_LINK_MBIT", "100"))


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _start_link(target_port: int) -> tuple[subprocess.Popen[str], int]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "tests"))
    link = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "support.delay_link",
            f"--target-port={target_port}",
            f"--delay-ms={DELAY_MS}",
            f"--rate-mbit={MBIT}",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert link.stdout is not None
    return link, int(link.stdout.readline())


def _ratio_interval(one: list[float], eight: list[float], draws: int = 4000) -> tuple[float, float]:
    """Percentile bootstrap (95 %) of median(eight) / median(one), rounds resampled in pairs."""
    rng = random.Random(0)
    pairs = list(zip(one, eight, strict=True))
    ratios = []
    for _ in range(draws):
        sample = [rng.choice(pairs) for _ in pairs]
        ratios.append(
            statistics.median(e for _, e in sample) / statistics.median(o for o, _ in sample)
        )
    ratios.sort()
    return ratios[int(0.025 * draws)], ratios[int(0.975 * draws) - 1]


def run() -> list[Ratio]:
    sys.path.insert(0, str(REPO / "tests"))
    from support.fixtures import preinstall_agent
    from support.sshd import SshdFleet, sshd_available

    from benchmarks.bench_deploy import _clear, _device_cpu_s, _model_20mb
    from edgeprune.fleet import deploy, load_inventory, load_model

    if not sshd_available():
        return [Ratio("deploy 20 MB over slow links: needs openssh-server", float("nan"))]
    model = load_model(_model_20mb())
    links: list[subprocess.Popen[str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-link-") as tmp:
        fleet = SshdFleet.start(Path(tmp) / "fleet", DEVICES)
        try:
            for board in fleet.devices:
                preinstall_agent(board)
                link, port = _start_link(board.port)
                links.append(link)
                board.dial_port = port  # the inventory and known_hosts name the link
            fleet.write_known_hosts(fleet.devices)
            fleet.write_inventory()
            devices = list(load_inventory(fleet.inventory_path).select(tags=["sshd"]))
            samples: dict[int, list[float]] = {1: [], 8: []}
            cpu: dict[int, list[tuple[float, float, float]]] = {1: [], 8: []}

            def timed(count: int) -> None:
                _clear(fleet, model.sha256)
                host0, dev0 = time.process_time(), _device_cpu_s(fleet)
                link0 = sum(_cpu_s(link.pid) for link in links)
                start = time.perf_counter()
                group = deploy(devices[:count], [model], parallel=DEVICES)
                samples[count].append(time.perf_counter() - start)
                if group.failed:
                    raise RuntimeError(group.failed[0].message)
                if any(f.status != "sent" for o in group for f in o.value or []):
                    raise RuntimeError("a round found the model already there")
                time.sleep(0.5)  # each sshd reaps its session's processes
                cpu[count].append(
                    (
                        (time.process_time() - host0) / count,
                        (_device_cpu_s(fleet) - dev0) / count,
                        (sum(_cpu_s(link.pid) for link in links) - link0) / count,
                    )
                )

            for index in range(ROUNDS):
                for count in (1, 8) if index % 2 == 0 else (8, 1):
                    timed(count)
        finally:
            for link in links:
                link.kill()
                link.wait()
            fleet.close()
    one, eight = samples[1], samples[8]
    low, high = _ratio_interval(one, eight)
    per_round = [e / o for o, e in zip(one, eight, strict=True)]

    def median_cpu(count: int, which: int) -> float:
        return statistics.median(c[which] for c in cpu[count])

    return [
        Ratio(
            f"deploy 20 MB over {DELAY_MS:g} ms / {MBIT:g} Mbit/s links: 8 devices / 1 (wall)",
            statistics.median(eight) / statistics.median(one),
            goal=1.5,
            detail={
                "ci95_low": low,
                "ci95_high": high,
                "round_ratio_min": min(per_round),
                "round_ratio_max": max(per_round),
                "rounds": ROUNDS,
                "one_s": statistics.median(one),
                "eight_s": statistics.median(eight),
                "host_cpu_s_per_device_1": median_cpu(1, 0),
                "device_cpu_s_per_device_1": median_cpu(1, 1),
                "link_cpu_s_per_device_1": median_cpu(1, 2),
                "host_cpu_s_per_device_8": median_cpu(8, 0),
                "device_cpu_s_per_device_8": median_cpu(8, 1),
                "link_cpu_s_per_device_8": median_cpu(8, 2),
                "model_mb": model.size_bytes / 1e6,
                "cores": os.cpu_count(),
                "load_avg_1m": os.getloadavg()[0],
            },
        )
    ]
