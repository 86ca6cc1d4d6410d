"""Deploy over SSH: a 20 MB model to 8 sshd devices against to 1, and an unchanged re-deploy.

Real parts: 8 OpenSSH sshd "devices" on 127.0.0.1 (tests/support/sshd.py), the real agent
installed on each (`admit` verifies every byte), a real 20 MB TFLite model. Each round
removes the model from the devices' spools, then times `deploy` to one device and to all
eight, alternating so drift hits both alike. Goals (issue 16; a fleet deploy must run in
parallel, a re-deploy must send nothing): 8 devices ≤ 1.5× one device; an unchanged
re-deploy ≤ 0.15 s per device (connect + `has`, nothing sent).

On a 2-core host the 8 uploads share its cores with 8 sshd processes and 8 agents, so the
ratio measures this machine's CPU as much as the fan-out. So the CPU seconds per device are
reported too, on both sides: the host process (paramiko: cipher and SFTP loop) and the
"device" (each sshd with everything it forked: the cipher, sftp-server, the agent's Python
processes for `has` and `admit`). When (host + device) CPU per device × 8 exceeds the
8-device wall time × cores, the fan-out is CPU-bound here, not waiting on itself.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Ratio

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / "build" / "bench-cache"
DEVICES = 8
ROUNDS = 3


def _model_20mb() -> Path:
    """A real float32 TFLite model of about 20 MB (one Dense 2560→2048), built once."""
    target = CACHE / "deploy-20mb-v1.tflite"
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    from edgeprune._tf import keras, quiet_native_output, tf

    k = keras()
    k.utils.set_random_seed(0)
    model = k.Sequential([k.Input((2560,)), k.layers.Dense(2048)])
    with quiet_native_output():
        data = tf().lite.TFLiteConverter.from_keras_model(model).convert()
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    os.replace(partial, target)
    return target


def _clear(fleet, sha256: str) -> None:
    for device in fleet.devices:
        (device.spool / "models" / f"{sha256}.tflite").unlink(missing_ok=True)


def _device_cpu_s(fleet) -> float:
    """CPU seconds of every sshd and its reaped children (sessions, sftp, agent calls)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for device in fleet.devices:
        fields = Path(f"/proc/{device.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += sum(int(x) for x in fields[11:15]) / ticks  # utime stime cutime cstime
    return total


def run() -> list[Ratio]:
    sys.path.insert(0, str(REPO / "tests"))
    from support.sshd import SshdFleet, sshd_available

    from edgeprune.fleet import deploy, load_inventory, load_model
    from edgeprune.fleet.fanout import fan_out
    from edgeprune.fleet.install import install_agent
    from edgeprune.fleet.session import DeviceSession

    if not sshd_available():
        return [Ratio("deploy: sshd not installed (apt-get install openssh-server)", float("nan"))]
    model = load_model(_model_20mb())
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        fleet = SshdFleet.start(Path(tmp), DEVICES)
        try:
            devices = list(load_inventory(fleet.inventory_path).select(tags=["sshd"]))

            def install(device):  # type: ignore[no-untyped-def]
                with DeviceSession.open(device) as session:
                    return install_agent(session, runtime="system", start_service=False)

            installed = fan_out(devices, install, 4)
            if installed.failed:
                raise RuntimeError(installed.failed[0].message)

            cpu: dict[str, list[float]] = {"host_1": [], "host_8": [], "dev_1": [], "dev_8": []}

            def timed_deploy(targets, key: str | None = None) -> float:  # type: ignore[no-untyped-def]
                host0, dev0 = time.process_time(), _device_cpu_s(fleet)
                start = time.perf_counter()
                group = deploy(targets, [model], parallel=DEVICES)
                elapsed = time.perf_counter() - start
                if group.failed:
                    raise RuntimeError(group.failed[0].message)
                if key:
                    time.sleep(0.5)  # let each sshd reap its session's processes
                    cpu["host_" + key].append((time.process_time() - host0) / len(targets))
                    cpu["dev_" + key].append((_device_cpu_s(fleet) - dev0) / len(targets))
                return elapsed

            one, eight = [], []
            for _ in range(ROUNDS):
                _clear(fleet, model.sha256)
                one.append(timed_deploy(devices[:1], "1"))
                _clear(fleet, model.sha256)
                eight.append(timed_deploy(devices, "8"))
            redeploy_one = [timed_deploy(devices[:1]) for _ in range(5)]
            redeploy_eight = [timed_deploy(devices) for _ in range(3)]
            with DeviceSession.open(devices[0]) as session:  # where the time goes
                has_s = []
                for _ in range(5):
                    start = time.perf_counter()
                    session.agent.has([model.sha256])
                    has_s.append(time.perf_counter() - start)
        finally:
            fleet.close()
    t1, t8 = statistics.median(one), statistics.median(eight)
    return [
        Ratio(
            "deploy 20 MB: 8 devices / 1 device (wall time)",
            t8 / t1,
            goal=1.5,
            detail={
                "one_s": t1,
                "eight_s": t8,
                "model_mb": model.size_bytes / 1e6,
                "cores": os.cpu_count(),
                "load_avg_1m": os.getloadavg()[0],
            },
        ),
        Ratio(
            "deploy 20 MB to 8 devices: CPU seconds per device, host + device",
            statistics.median(cpu["host_8"]) + statistics.median(cpu["dev_8"]),
            detail={
                "host_cpu_per_device_s": statistics.median(cpu["host_8"]),
                "device_cpu_per_device_s": statistics.median(cpu["dev_8"]),
                "host_cpu_one_device_s": statistics.median(cpu["host_1"]),
                "device_cpu_one_device_s": statistics.median(cpu["dev_1"]),
                "cpu_floor_8_devices_s": 8
                * (statistics.median(cpu["host_8"]) + statistics.median(cpu["dev_8"]))
                / (os.cpu_count() or 1),
            },
        ),
        Ratio(
            "re-deploy unchanged to 1 device, seconds",
            statistics.median(redeploy_one),
            goal=0.15,
            detail={
                "agent_has_call_s": statistics.median(has_s),
                "load_avg_1m": os.getloadavg()[0],
            },
        ),
        Ratio(
            "re-deploy unchanged to 8 devices, wall seconds per device",
            statistics.median(redeploy_eight) / DEVICES,
            goal=0.15,
            detail={"eight_devices_wall_s": statistics.median(redeploy_eight)},
        ),
    ]
