"""Raspberry Pi facts from the device tree and the firmware's `vcgencmd`.

`get_throttled` is the one honest source of "was this board slowed down": its low bits say
what is happening now, bits 16-19 what has happened since boot (documented at
raspberrypi.com/documentation/computers/os.html#get_throttled).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, Optional

from .linux import device_tree_model
from .tools import ToolOutput, run_tool

THROTTLE_FLAGS = {
    "under_voltage": 0,
    "frequency_capped": 1,
    "throttled": 2,
    "soft_temperature_limit": 3,
}
SINCE_BOOT_SHIFT = 16

_TEMP = re.compile(r"temp=\s*(-?[0-9.]+)\s*'?C")
_THROTTLED = re.compile(r"throttled=(0x[0-9a-fA-F]+|[0-9]+)")
_CLOCK = re.compile(r"frequency\((\d+)\)=\s*(\d+)")

ToolRunner = Callable[..., ToolOutput]


def is_raspberry_pi(root: str = "/") -> bool:
    model = device_tree_model(root) or ""
    return model.startswith("Raspberry Pi")


def parse_measure_temp(text: str) -> Optional[float]:
    """`temp=48.3'C` -> 48.3"""
    match = _TEMP.search(text)
    return float(match.group(1)) if match else None


def parse_get_throttled(text: str) -> Optional[Dict[str, Any]]:
    """`throttled=0x50005` -> raw value plus named flags, now and since boot."""
    match = _THROTTLED.search(text)
    if not match:
        return None
    raw = int(match.group(1), 0)
    return decode_throttled(raw)


def decode_throttled(raw: int) -> Dict[str, Any]:
    return {
        "raw": hex(raw),
        "now": {name: bool(raw >> bit & 1) for name, bit in THROTTLE_FLAGS.items()},
        "since_boot": {
            name: bool(raw >> (bit + SINCE_BOOT_SHIFT) & 1) for name, bit in THROTTLE_FLAGS.items()
        },
    }


def parse_measure_clock(text: str) -> Optional[int]:
    """`frequency(48)=1800404352` (Pi 4) or `frequency(0)=2400029952` (Pi 5) -> Hz."""
    match = _CLOCK.search(text)
    return int(match.group(2)) if match else None


def throttle_state(runner: ToolRunner = run_tool) -> Dict[str, Any]:
    """Temperature and throttle flags right now: sampled before, during and after a run."""
    temp = runner(["vcgencmd", "measure_temp"])
    throttled = runner(["vcgencmd", "get_throttled"])
    state: Dict[str, Any] = {
        "temperature_c": parse_measure_temp(temp.text) if temp.text is not None else None,
        "throttled": parse_get_throttled(throttled.text) if throttled.text is not None else None,
    }
    errors = [out.error for out in (temp, throttled) if out.error]
    if errors:
        state["error"] = errors[0]
    return state


def raspberry_pi_facts(root: str = "/", runner: ToolRunner = run_tool) -> Optional[Dict[str, Any]]:
    """None unless the device tree names a Raspberry Pi; otherwise whatever the tools give."""
    if not is_raspberry_pi(root):
        return None
    clock = runner(["vcgencmd", "measure_clock", "arm"])
    facts: Dict[str, Any] = {"model": device_tree_model(root)}
    facts.update(throttle_state(runner))
    facts["arm_clock_hz"] = parse_measure_clock(clock.text) if clock.text is not None else None
    if not clock.ok and "error" not in facts:
        facts["error"] = clock.error
    return facts
