"""Device facts and thermal state: generic Linux, plus Raspberry Pi and Jetson extras.

`device_facts()` describes the board once per job; `thermal_snapshot()` is cheap enough to
call every few seconds while a benchmark runs (sysfs reads, and `vcgencmd` on a Pi).
"""

from __future__ import annotations

import platform
import time
from typing import Any, Dict, List, Optional

from . import jetson, linux, raspberry_pi
from .tools import run_tool


def device_facts(root: str = "/") -> Dict[str, Any]:
    facts = linux.linux_facts(root)
    pi = raspberry_pi.raspberry_pi_facts(root, run_tool)
    jet = jetson.jetson_facts(root, run_tool)
    board = facts.get("board_model")
    if not board:
        board = facts.get("cpu_model") or platform.machine()
    facts.update(
        {
            "board": board,
            "hostname": platform.node() if root == "/" else None,
            "python": platform.python_version(),
            "raspberry_pi": pi,
            "jetson": jet,
        }
    )
    return facts


def thermal_snapshot(root: str = "/", cpus: Optional[List[int]] = None) -> Dict[str, Any]:
    """Temperatures, clocks/governors of `cpus` (all if None) and throttle counters now."""
    zones = linux.thermal_zones(root)
    snapshot: Dict[str, Any] = {
        "time": time.time(),
        "zones": {z["type"]: z["temp_c"] for z in zones},
        "clocks": linux.cpu_clocks(root, cpus),
        "x86_throttle_count": linux.x86_throttle_count(root),
        "raspberry_pi": None,
    }
    temps = [z["temp_c"] for z in zones]
    if raspberry_pi.is_raspberry_pi(root):
        state = raspberry_pi.throttle_state(run_tool)
        snapshot["raspberry_pi"] = state
        if state.get("temperature_c") is not None:
            temps.append(state["temperature_c"])
    snapshot["temperature_c"] = max(temps) if temps else None
    return snapshot


__all__ = ["device_facts", "jetson", "linux", "raspberry_pi", "thermal_snapshot"]
