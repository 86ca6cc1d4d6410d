"""`edgeprune-agent doctor`: can this board benchmark, and what would make its numbers wrong?"""

from __future__ import annotations

import os
import platform
import stat
from typing import Any, Dict, List

from . import __version__
from .locks import daemon_state
from .probes import device_facts
from .probes.linux import cpu_features
from .run_conditions import governors, throttling_seen
from .runtimes import RuntimeNotAvailable, available_runtimes, is_installed, select_runtime
from .sparse_support import sparse_path_support
from .spool import Spool

MIN_FREE_BYTES = 100 * 1024 * 1024


def doctor_report(spool: Spool) -> Dict[str, Any]:
    """The contract's doctor document; `problems` lists what to fix, one line each."""
    problems: List[str] = []
    try:
        runtime = select_runtime()
        runtime_dict = runtime.to_dict()
        support = sparse_path_support(
            runtime.name, runtime.version, platform.machine(), cpu_features()
        )
    except RuntimeNotAvailable as exc:
        runtime = None
        runtime_dict = None
        support = sparse_path_support(None, "", platform.machine(), cpu_features())
        problems.append(str(exc))
    if not is_installed("numpy"):
        problems.append("numpy is not installed: pip install numpy")
    elif runtime is not None and runtime.name == "tflite_runtime" and _numpy_major() >= 2:
        problems.append(
            "tflite-runtime needs numpy < 2 but numpy 2 is installed: "
            "pip install 'numpy<2' (or install ai-edge-litert instead)"
        )
    if (
        runtime is not None
        and not support["capable"]
        and "ai-edge-litert" in (support.get("fix") or "")
    ):
        problems.append(f"sparse models will run dense here: {support['reason']}; {support['fix']}")
    if os.getuid() == 0:
        problems.append("running as root: run the agent as an ordinary user")
    device = device_facts()
    problems.extend(_board_problems(device))
    spool_facts = _spool_health(spool, problems)
    return {
        "agent_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "runtime": runtime_dict,
        "runtimes_available": available_runtimes(),
        "sparse_path": support,
        "device": device,
        "spool": spool_facts,
        "daemon": daemon_state(spool.root),
        "problems": problems,
    }


def doctor_fatal(report: Dict[str, Any]) -> bool:
    """True when no benchmark can run at all (doctor then exits 1)."""
    return report["runtime"] is None or not report["spool"]["writable"]


def _numpy_major() -> int:
    try:
        from importlib import metadata

        return int(metadata.version("numpy").split(".")[0])
    except Exception:
        return 0


def _board_problems(device: Dict[str, Any]) -> List[str]:
    problems = []
    snapshot = {"clocks": device.get("clocks") or []}
    slow = {g: c for g, c in governors(snapshot).items() if g != "performance"}
    if slow:
        problems.append(
            "CPU governor is " + ", ".join(sorted(slow)) + ", not 'performance': latencies will "
            "include clock ramp-up (echo performance | sudo tee "
            "/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor)"
        )
    pi = device.get("raspberry_pi") or {}
    state = pi.get("throttled")
    if state:
        seen = throttling_seen({"raspberry_pi": pi}, [], {})
        if seen["under_voltage"] or state["since_boot"]["under_voltage"]:
            problems.append("the Pi has seen under-voltage: use a stronger power supply")
        if seen["throttled"]:
            problems.append(f"the Pi is throttled now ({state['raw']}): add cooling")
    return problems


def _spool_health(spool: Spool, problems: List[str]) -> Dict[str, Any]:
    exists = os.path.isdir(spool.root)
    target = spool.root if exists else os.path.dirname(spool.root)
    writable = os.access(target, os.W_OK | os.X_OK)
    facts: Dict[str, Any] = {
        "path": spool.root,
        "exists": exists,
        "free_bytes": spool.free_bytes(),
        "writable": writable,
        "queued": len(spool.list_ids("queued")),
        "running": len(spool.list_ids("running")),
        "results": len(spool.list_ids("results")),
    }
    if not writable:
        problems.append(f"spool {spool.root} is not writable: pass --spool DIR to a writable place")
    if exists:
        info = os.stat(spool.root)
        if info.st_uid != os.getuid():
            problems.append(f"spool {spool.root} belongs to uid {info.st_uid}, not this user")
        if stat.S_IMODE(info.st_mode) & 0o077:
            problems.append(
                f"spool {spool.root} is open to other users (mode "
                f"{oct(stat.S_IMODE(info.st_mode))}): chmod 700 {spool.root}"
            )
    free = facts["free_bytes"]
    if free is not None and free < MIN_FREE_BYTES:
        problems.append(f"only {free // (1024 * 1024)} MiB free for the spool: results may not fit")
    return facts
