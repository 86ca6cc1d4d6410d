"""Facts every Linux board has in /proc and /sys: CPU, clocks, governors, memory, thermal zones.

Every reader takes `root` (normally "/") so tests can point it at a recorded board's files.
Anything missing (no cpufreq in a VM, no thermal zones in a container) comes back as None
or an empty list, never as an exception.
"""

from __future__ import annotations

import os
import platform
import re
from typing import Any, Dict, List, Optional, Set

from .tools import read_int, read_text

# ARM's "CPU part" numbers (implementer 0x41) of the cores found on hobby and edge boards.
ARM_CORE_NAMES = {
    "0xd03": "Cortex-A53",
    "0xd04": "Cortex-A35",
    "0xd05": "Cortex-A55",
    "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72",
    "0xd09": "Cortex-A73",
    "0xd0a": "Cortex-A75",
    "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1",
    "0xd0d": "Cortex-A77",
    "0xd41": "Cortex-A78",
    "0xd42": "Cortex-A78AE",
    "0xd4b": "Cortex-A78C",
    "0xd46": "Cortex-A510",
    "0xd47": "Cortex-A710",
    "0xd48": "Cortex-X2",
    "0xd4d": "Cortex-A715",
}
NVIDIA_CORE_NAMES = {"0x004": "NVIDIA Carmel"}
# Features that decide which XNNPACK kernels run (fp16 arithmetic, dot product, AVX...):
# the ones a result reports; the full list stays in /proc/cpuinfo.
KERNEL_FEATURES = (
    "asimd",
    "asimddp",
    "asimdhp",
    "fphp",
    "i8mm",
    "bf16",
    "sve",
    "sve2",
    "neon",
    "vfpv4",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_fp16",
    "avx512_vnni",
    "avx_vnni",
    "amx_int8",
)
_CPU_DIR = re.compile(r"^cpu(\d+)$")


def parse_cpuinfo(text: str) -> Dict[str, Any]:
    """Model name, logical CPU count and feature flags from /proc/cpuinfo (x86 or ARM)."""
    processors = 0
    model_name = None
    hardware = None
    board_model = None
    features: Set[str] = set()
    parts: List[str] = []
    implementer = None
    for line in text.splitlines():
        raw_key, sep, value = line.partition(":")
        if not sep:
            continue
        key = raw_key.strip().lower()
        value = value.strip()
        if key == "processor":
            processors += 1
        elif key == "model name" and model_name is None:
            model_name = value
        elif key in ("features", "flags") and value:
            features.update(value.split())
        elif key == "cpu part":
            parts.append(value.lower())
        elif key == "cpu implementer" and implementer is None:
            implementer = value.lower()
        elif key == "hardware":
            hardware = value
        elif raw_key.strip() == "Model":  # ARM boards; x86's lowercase "model" is a number
            board_model = value
    core_names = []
    for part in parts:
        table = NVIDIA_CORE_NAMES if implementer == "0x4e" else ARM_CORE_NAMES
        name = table.get(part, f"ARM part {part}")
        if name not in core_names:
            core_names.append(name)
    if model_name is None and core_names:
        model_name = " + ".join(core_names)
    return {
        "model": model_name,
        "cores": processors or None,
        "core_types": core_names,
        "features": sorted(features),
        "hardware": hardware,
        "board_model": board_model,
    }


def cpu_features(root: str = "/") -> Set[str]:
    text = read_text(root, "/proc/cpuinfo") or ""
    return set(parse_cpuinfo(text)["features"])


def cpu_numbers(root: str = "/") -> List[int]:
    base = os.path.join(root, "sys/devices/system/cpu")
    try:
        names = os.listdir(base)
    except OSError:
        return []
    numbers = []
    for name in names:
        match = _CPU_DIR.match(name)
        if match:
            numbers.append(int(match.group(1)))
    return sorted(numbers)


def cpu_clocks(root: str = "/", cpus: Optional[List[int]] = None) -> List[Dict[str, Any]]:
    """Per CPU: governor, current and maximum MHz (None where cpufreq is absent)."""
    clocks = []
    for cpu in cpus if cpus is not None else cpu_numbers(root):
        base = f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/"
        governor = read_text(root, base + "scaling_governor")
        cur = read_int(root, base + "scaling_cur_freq")
        top = read_int(root, base + "cpuinfo_max_freq")
        limit = read_int(root, base + "scaling_max_freq")
        clocks.append(
            {
                "cpu": cpu,
                "governor": governor.strip() if governor else None,
                "cur_mhz": None if cur is None else round(cur / 1000.0, 1),
                "max_mhz": None if top is None else round(top / 1000.0, 1),
                "limit_mhz": None if limit is None else round(limit / 1000.0, 1),
            }
        )
    return clocks


def thermal_zones(root: str = "/") -> List[Dict[str, Any]]:
    """Every /sys/class/thermal zone with a readable temperature, in degrees Celsius."""
    base = os.path.join(root, "sys/class/thermal")
    try:
        names = sorted(n for n in os.listdir(base) if n.startswith("thermal_zone"))
    except OSError:
        return []
    zones = []
    for name in names:
        millis = read_int(root, f"/sys/class/thermal/{name}/temp")
        kind = read_text(root, f"/sys/class/thermal/{name}/type")
        if millis is None:
            continue
        zones.append(
            {"zone": name, "type": (kind or name).strip(), "temp_c": round(millis / 1000.0, 1)}
        )
    return zones


def x86_throttle_count(root: str = "/") -> Optional[int]:
    """Sum of the kernel's per-core and package thermal-throttle counters (x86 only)."""
    total = None
    for cpu in cpu_numbers(root):
        for name in ("core_throttle_count", "package_throttle_count"):
            value = read_int(root, f"/sys/devices/system/cpu/cpu{cpu}/thermal_throttle/{name}")
            if value is not None:
                total = (total or 0) + value
    return total


def parse_meminfo(text: str) -> Dict[str, Optional[int]]:
    values: Dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if key in ("MemTotal", "MemAvailable", "SwapTotal", "SwapFree") and parts:
            try:
                values[key] = int(parts[0])
            except ValueError:
                continue
    return {
        "total_kb": values.get("MemTotal"),
        "available_kb": values.get("MemAvailable"),
        "swap_total_kb": values.get("SwapTotal"),
        "swap_free_kb": values.get("SwapFree"),
    }


def parse_os_release(text: str) -> Optional[str]:
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip().strip('"')
    return fields.get("PRETTY_NAME") or fields.get("NAME")


def load_average(root: str = "/") -> Optional[List[float]]:
    text = read_text(root, "/proc/loadavg")
    if not text:
        return None
    try:
        return [float(x) for x in text.split()[:3]]
    except ValueError:
        return None


def device_tree_model(root: str = "/") -> Optional[str]:
    for path in ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model"):
        text = read_text(root, path)
        if text:
            return text.strip("\x00\n ")
    return None


def linux_facts(root: str = "/") -> Dict[str, Any]:
    cpuinfo = parse_cpuinfo(read_text(root, "/proc/cpuinfo") or "")
    kernel = read_text(root, "/proc/sys/kernel/osrelease")
    os_release = read_text(root, "/etc/os-release")
    meminfo = read_text(root, "/proc/meminfo")
    return {
        "arch": platform.machine() if root == "/" else None,
        "cpu_model": cpuinfo["model"],
        "core_types": cpuinfo["core_types"],
        "cores": cpuinfo["cores"] or (os.cpu_count() if root == "/" else None),
        "cpu_features": [f for f in KERNEL_FEATURES if f in cpuinfo["features"]],
        "clocks": cpu_clocks(root),
        "kernel": kernel.strip() if kernel else (platform.release() if root == "/" else None),
        "distribution": parse_os_release(os_release) if os_release else None,
        "memory": parse_meminfo(meminfo) if meminfo else None,
        "load_average": load_average(root),
        "thermal_zones": thermal_zones(root),
        "board_model": device_tree_model(root) or cpuinfo["board_model"],
    }
