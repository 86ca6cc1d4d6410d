"""The agent session (one agent process per device per command) against per-call agents.

Real parts: OpenSSH sshd "devices" on 127.0.0.1 (tests/support/sshd.py) running this
checkout's agent (support.fixtures.preinstall_agent), real tiny TFLite models, the library's
own `run_bench` and `deploy` (what one `edgeprune bench` / `deploy` command runs).

(a) `bench` of 4 small models against 1 model on one device, each a whole command (deploy
    from empty spool, submit, serve --once, wait, ack), rounds alternating 1 / 4 so drift
    hits both; goal 4 models <= 1.3x one. The per-call mode (EDGEPRUNE_AGENT_SESSION=0) is
    measured side by side, with the SSH exec channels (= agent processes) each command opened.
    The agent's fork server (device_agents/zygote.py) is switched off on a twin device
    (its sshd sets EDGEPRUNE_AGENT_FORK=0), so "today's" bench (per call, every rounds
    child a new Python) and a session without the zygote run in the same rounds; a third
    device's zygote does not freeze its heap (EDGEPRUNE_ZYGOTE_FREEZE=0), so the cost of a
    forked child's first collection over the zygote's objects shows beside it.
    BENCH_SESSION_ROUNDS (default 5) rounds; each reports the per-round 4/1 range.
(b) An unchanged re-deploy to 8 devices in one command: wall seconds per device; goal
    <= 0.15 s. Beside it, in the same rounds: the boards' agent swapped for a copy speaking
    session protocol 1.0 (its `has` a round trip of its own), and per-call mode.
BENCH_SESSION_PARTS=bench or =redeploy runs one of the two.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Ratio

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / "build" / "bench-cache"
ROUNDS = 3
DEVICES = 8
MODES = {"session": "1", "per-call": "0"}
# re-deploy modes: (EDGEPRUNE_AGENT_SESSION, the boards' agent: "1.1" this checkout, "1.0" a
# copy without `hello-has`, so the `has` call is its own round trip as before protocol 1.1)
REDEPLOY_MODES = {
    "session, agent 1.1 (has in hello)": ("session", "1.1"),
    "session, agent 1.0 (has call)": ("session", "1.0"),
    "per-call": ("per-call", "1.1"),
}
PARTS = os.environ.get("BENCH_SESSION_PARTS", "bench,redeploy").split(",")
"""BENCH_SESSION_PARTS=redeploy (or bench) runs one half."""
# bench modes: (agent session, device index); the zygote and its heap freeze are properties
# of the device's agent (its sshd's environment: EDGEPRUNE_AGENT_FORK, EDGEPRUNE_ZYGOTE_FREEZE)
BENCH_MODES = {
    "session+fork": ("session", 0),
    "session+fork, no heap freeze": ("session", 2),
    "session, no fork": ("session", 1),
    "per-call, no fork (before issue 16)": ("per-call", 1),
}
BENCH_ROUNDS = int(os.environ.get("BENCH_SESSION_ROUNDS", "5"))


def _tiny_models(directory: Path, count: int) -> list[Path]:
    from support.fixtures import build_tiny_tflite, padded_model_variants

    base = CACHE / "session-tiny-v1.tflite"
    if not base.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        build_tiny_tflite(base.with_suffix(".partial"))
        os.replace(base.with_suffix(".partial"), base)
    return padded_model_variants(base, count, directory)


def _clear(spool: Path) -> None:
    for path in (spool / "models").glob("*.tflite"):
        path.unlink()


def _children(results: list[Any]) -> str:
    """The benchmark processes a command's jobs started on the board: "N spawned" or
    "N forked + 1 zygote" (Measurement.processes, .process_start)."""
    measured = [m for r in results for m in r.measurements]
    count = sum(len(m.processes) if m.processes else 1 for m in measured)
    starts = {m.process_start for m in measured}
    return f"{count} forked + 1 zygote" if starts == {"fork"} else f"{count} spawned"


def _board_cpu(fleet: Any) -> float:
    """CPU seconds the devices' sshd sessions have used so far (each sshd listener's reaped
    children: the session processes and the agents they ran), from /proc/PID/stat."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for device in fleet.devices:
        with open(f"/proc/{device.process.pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        total += (int(fields[13]) + int(fields[14])) / tick  # cutime, cstime
    return total


def _in_mode(mode: str, action: Any) -> tuple[float, int]:
    """Wall seconds of `action()` and the exec channels it opened, with sessions on or off."""
    from edgeprune.fleet.transport import EXEC_COUNTS

    old = os.environ.get("EDGEPRUNE_AGENT_SESSION")
    os.environ["EDGEPRUNE_AGENT_SESSION"] = MODES[mode]
    EXEC_COUNTS.clear()
    try:
        start = time.perf_counter()
        action()
        return time.perf_counter() - start, sum(EXEC_COUNTS.values())
    finally:
        if old is None:
            os.environ.pop("EDGEPRUNE_AGENT_SESSION", None)
        else:
            os.environ["EDGEPRUNE_AGENT_SESSION"] = old


def run() -> list[Ratio]:
    sys.path.insert(0, str(REPO / "tests"))
    from support.fixtures import agent_of_protocol_1_0, install_wrapper, preinstall_agent
    from support.sshd import DeviceSpec, SshdFleet, sshd_available

    from device_agents.protocol import BenchOptions
    from edgeprune.fleet import deploy, load_inventory, load_model
    from edgeprune.fleet.remote_bench import run_bench

    if not sshd_available():
        return [Ratio("session: sshd not installed (apt-get install openssh-server)", float("nan"))]
    options = BenchOptions(runs=20, warmup=2)
    with tempfile.TemporaryDirectory(prefix="bench-session-") as tmp:
        root = Path(tmp)
        models = [load_model(p) for p in _tiny_models(root / "models", 4)]
        specs = [DeviceSpec(name=f"dev{i + 1}", tags=["sshd"]) for i in range(DEVICES)]
        specs[1].env = {"EDGEPRUNE_AGENT_FORK": "0"}  # dev2: the agent spawns every child
        specs[2].env = {"EDGEPRUNE_ZYGOTE_FREEZE": "0"}  # dev3: the zygote's heap not frozen
        fleet = SshdFleet.start(root / "fleet", devices=specs)
        try:
            for device in fleet.devices:
                preinstall_agent(device)
            devices = list(load_inventory(fleet.inventory_path).select(tags=["sshd"]))

            def bench(count: int, index: int) -> Any:
                spool = fleet.devices[index].spool

                def action() -> None:
                    seen: list[Any] = []
                    _clear(spool)
                    group = run_bench(
                        devices[index : index + 1],
                        models[:count],
                        options,
                        on_result=lambda _name, _model, result: seen.append(result),
                    )
                    children[(count, index)] = _children(seen)
                    if group.failed:
                        raise RuntimeError(group.failed[0].message)

                return action

            children: dict[tuple[int, int], str] = {}
            times: dict[tuple[str, int], list[float]] = {}
            channels: dict[tuple[str, int], int] = {}
            board_s: dict[tuple[str, int], list[float]] = {}
            for _ in range(BENCH_ROUNDS if "bench" in PARTS else 0):
                for mode, (session, index) in BENCH_MODES.items():
                    for count in (1, 4):
                        board_before = _board_cpu(fleet)
                        seconds, opened = _in_mode(session, bench(count, index))
                        time.sleep(0.5)  # the sshd listeners reap their sessions' processes
                        board_s.setdefault((mode, count), []).append(
                            _board_cpu(fleet) - board_before
                        )
                        times.setdefault((mode, count), []).append(seconds)
                        channels[(mode, count)] = opened

            def redeploy() -> None:
                group = deploy(devices, models[:1], parallel=DEVICES)
                if group.failed:
                    raise RuntimeError(group.failed[0].message)

            again: dict[str, list[float]] = {mode: [] for mode in REDEPLOY_MODES}
            redeploy_channels: dict[str, int] = {}
            cpu: dict[str, list[tuple[float, float]]] = {mode: [] for mode in REDEPLOY_MODES}
            agents = {
                "1.1": Path(fleet.devices[0].spool) / "venv" / "bin" / "python",
                "1.0": agent_of_protocol_1_0(root / "agent-1.0"),
            }
            agents["1.1"] = agents["1.1"].rename(root / "agent-1.1-python")
            if "redeploy" in PARTS:
                for board in fleet.devices:
                    install_wrapper(board, agents["1.1"])
                _in_mode("session", redeploy)  # every device holds the model from here on
            for _ in range(ROUNDS + 2 if "redeploy" in PARTS else 0):
                for mode, (session_mode, agent) in REDEPLOY_MODES.items():
                    for board in fleet.devices:
                        install_wrapper(board, agents[agent])
                    host_before, board_before = time.process_time(), _board_cpu(fleet)
                    seconds, opened = _in_mode(session_mode, redeploy)
                    host_s = time.process_time() - host_before
                    time.sleep(0.5)  # the sshd listeners reap their sessions' processes
                    cpu[mode].append((host_s, _board_cpu(fleet) - board_before))
                    again[mode].append(seconds)
                    redeploy_channels[mode] = opened
        finally:
            fleet.close()
    median = {key: statistics.median(values) for key, values in times.items()}
    rows = []
    for mode in BENCH_MODES if "bench" in PARTS else ():
        one, four = median[(mode, 1)], median[(mode, 4)]
        spread = [f / o for f, o in zip(times[(mode, 4)], times[(mode, 1)], strict=True)]
        rows.append(
            Ratio(
                f"bench 4 small models / 1 model, one sshd device ({mode})",
                four / one,
                goal=1.3 if mode == "session+fork" else None,
                detail={
                    "one_s": one,
                    "four_s": four,
                    "round_ratios_min": min(spread),
                    "round_ratios_max": max(spread),
                    "board_cpu_s_1_model": statistics.median(board_s[(mode, 1)]),
                    "board_cpu_s_4_models": statistics.median(board_s[(mode, 4)]),
                    "board_cpu_4_over_1": statistics.median(board_s[(mode, 4)])
                    / statistics.median(board_s[(mode, 1)]),
                    "channels_1_model": channels[(mode, 1)],
                    "channels_4_models": channels[(mode, 4)],
                    "board_processes_1_model": children.get((1, BENCH_MODES[mode][1]), "?"),
                    "board_processes_4_models": children.get((4, BENCH_MODES[mode][1]), "?"),
                    "load_avg_1m": os.getloadavg()[0],
                },
            )
        )
    before, now = "per-call, no fork (before issue 16)", "session+fork"
    for count in (1, 4) if "bench" in PARTS else ():
        rows.append(
            Ratio(
                f"bench {count} model(s): session+fork / before issue 16, wall time",
                median[(now, count)] / median[(before, count)],
                detail={
                    "channels_before": channels[(before, count)],
                    "channels_now": channels[(now, count)],
                },
            )
        )
    for mode in REDEPLOY_MODES if "redeploy" in PARTS else ():
        per_device = [s / DEVICES for s in again[mode]]
        rows.append(
            Ratio(
                f"re-deploy unchanged, 8 devices one command: s per device ({mode})",
                statistics.median(per_device),
                goal=0.15 if mode.startswith("session, agent 1.1") else None,
                detail={
                    "min_s": min(per_device),
                    "max_s": max(per_device),
                    "host_cpu_s_per_device": statistics.median(h for h, _ in cpu[mode]) / DEVICES,
                    "board_cpu_s_per_device": statistics.median(b for _, b in cpu[mode]) / DEVICES,
                    "channels": redeploy_channels[mode],
                    "cores": os.cpu_count(),
                    "load_avg_1m": os.getloadavg()[0],
                },
            )
        )
    return rows
