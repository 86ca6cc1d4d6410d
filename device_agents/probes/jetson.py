"""NVIDIA Jetson facts: L4T release, power mode, clocks and one `tegrastats` sample.

Formats follow NVIDIA's Jetson Linux Developer Guide ("Platform Power and Performance",
the tegrastats "Reported Statistics" table). `jetson_clocks --show` needs root on most
releases; without it the probe says so instead of failing.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import subprocess
import time
from typing import Any, Callable, Dict, List, Optional

from .linux import device_tree_model
from .tools import ToolOutput, read_text, run_tool

ABSENT_SENSOR_C = -256.0  # tegrastats prints this for a sensor that is not there

_RELEASE = re.compile(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([0-9.]+)")
_BOARD = re.compile(r"BOARD:\s*([^,\s]+)")
_POWER_MODE = re.compile(r"NV Power Mode:\s*(.+)")
_KEY_VALUE = re.compile(r"(\w+)=(\S+)")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_SWAP = re.compile(r"\bSWAP (\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\](?:@(\d+))?")
_EMC = re.compile(r"\bEMC_FREQ (\d+)%(?:@(\d+))?")
_GR3D = re.compile(r"\bGR3D_FREQ (\d+)%(?:@\[?([\d,]+)\]?)?")
_TEMP = re.compile(r"\b([A-Za-z][\w]*)@(-?\d+(?:\.\d+)?)C\b")
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]+) (\d+)mW/(\d+)mW")

ToolRunner = Callable[..., ToolOutput]


def is_jetson(root: str = "/") -> bool:
    if read_text(root, "/etc/nv_tegra_release") is not None:
        return True
    model = device_tree_model(root) or ""
    return "NVIDIA" in model and ("Jetson" in model or "Orin" in model)


def parse_nv_tegra_release(text: str) -> Optional[Dict[str, Any]]:
    """`# R35 (release), REVISION: 4.1, ...` -> {"l4t": "35.4.1", ...}"""
    match = _RELEASE.search(text)
    if not match:
        return None
    board = _BOARD.search(text)
    return {
        "l4t": f"{match.group(1)}.{match.group(2)}",
        "release": f"R{match.group(1)}",
        "revision": match.group(2),
        "board": board.group(1) if board else None,
    }


def parse_nvpmodel(text: str) -> Optional[Dict[str, Any]]:
    """`nvpmodel -q`: a line `NV Power Mode: MAXN`, then the mode's number."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        match = _POWER_MODE.search(line)
        if match:
            mode_id = None
            if index + 1 < len(lines) and lines[index + 1].isdigit():
                mode_id = int(lines[index + 1])
            return {"name": match.group(1).strip(), "id": mode_id}
    return None


def parse_jetson_clocks(text: str) -> Dict[str, Any]:
    """`jetson_clocks --show`: per-CPU governor and kHz, GPU and EMC Hz, power mode."""
    result: Dict[str, Any] = {"cpus": []}
    for line in text.splitlines():
        line = line.strip()
        head, _, rest = line.partition(":")
        if line.startswith("SOC family:"):
            family = re.search(r"SOC family:(\S+)", line)
            machine = re.search(r"Machine:(.+)$", line)
            result["soc_family"] = family.group(1) if family else None
            result["machine"] = machine.group(1).strip() if machine else None
        elif line.startswith("Online CPUs:"):
            result["online_cpus"] = rest.strip()
        elif re.match(r"^cpu\d+$", head):
            fields = dict(_KEY_VALUE.findall(rest))
            result["cpus"].append(
                {
                    "cpu": int(head[3:]),
                    "online": fields.get("Online", "1") == "1",
                    "governor": fields.get("Governor") or fields.get("Gonvernor"),
                    "min_khz": _int(fields.get("MinFreq")),
                    "max_khz": _int(fields.get("MaxFreq")),
                    "cur_khz": _int(fields.get("CurrentFreq")),
                }
            )
        elif line.startswith(("GPU ", "EMC ")):
            fields = dict(_KEY_VALUE.findall(line))
            result[line[:3].lower()] = {
                "min_hz": _int(fields.get("MinFreq")),
                "max_hz": _int(fields.get("MaxFreq")),
                "cur_hz": _int(fields.get("CurrentFreq")),
            }
        elif line.startswith("NV Power Mode:"):
            result["power_mode"] = rest.strip()
    online = [c for c in result["cpus"] if c["online"]]
    result["clocks_pinned"] = bool(online) and all(
        c["min_khz"] is not None and c["min_khz"] == c["max_khz"] for c in online
    )
    return result


def parse_tegrastats(line: str) -> Dict[str, Any]:
    """One tegrastats line -> memory, per-core CPU load/MHz, GPU, EMC, temperatures, rails."""
    sample: Dict[str, Any] = {}
    ram = _RAM.search(line)
    if ram:
        sample["ram_used_mb"], sample["ram_total_mb"] = int(ram.group(1)), int(ram.group(2))
    swap = _SWAP.search(line)
    if swap:
        sample["swap_used_mb"], sample["swap_total_mb"] = int(swap.group(1)), int(swap.group(2))
    cpu = _CPU.search(line)
    if cpu:
        cores: List[Optional[Dict[str, Any]]] = []
        shared_mhz = _int(cpu.group(2))
        for entry in cpu.group(1).split(","):
            entry = entry.strip()
            if entry == "off" or not entry:
                cores.append(None)
                continue
            load, _, mhz = entry.partition("@")
            cores.append({"load_pct": _int(load.rstrip("%")), "mhz": _int(mhz) or shared_mhz})
        sample["cpu"] = cores
    emc = _EMC.search(line)
    if emc:
        sample["emc"] = {"load_pct": int(emc.group(1)), "mhz": _int(emc.group(2))}
    gr3d = _GR3D.search(line)
    if gr3d:
        freqs = [int(f) for f in gr3d.group(2).split(",")] if gr3d.group(2) else []
        sample["gpu"] = {"load_pct": int(gr3d.group(1)), "mhz": freqs}
    temps = {}
    for name, value in _TEMP.findall(line):
        celsius = float(value)
        if celsius > ABSENT_SENSOR_C:
            temps[name.lower()] = celsius
    sample["temperatures_c"] = temps
    sample["power_mw"] = {
        name: {"now": int(now), "avg": int(avg)} for name, now, avg in _RAIL.findall(line)
    }
    return sample


def sample_tegrastats(interval_ms: int = 500, timeout_s: float = 5.0) -> Dict[str, Any]:
    """Start tegrastats, keep its first line, stop it. {"error": ...} when that fails."""
    if shutil.which("tegrastats") is None:
        return {"error": "tegrastats is not installed (not on PATH)"}
    try:
        proc = subprocess.Popen(
            ["tegrastats", "--interval", str(interval_ms)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        return {"error": f"tegrastats could not be run: {exc.strerror or exc}"}
    try:
        line = _first_line(proc, timeout_s)
    finally:
        _stop(proc)
    if not line:
        return {"error": f"tegrastats printed nothing within {timeout_s:g} s"}
    sample = parse_tegrastats(line)
    sample["line"] = line.strip()[:1000]
    return sample


def _first_line(proc: subprocess.Popen, timeout_s: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    buffer = b""
    fd = proc.stdout.fileno()
    while b"\n" not in buffer:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buffer += chunk
    return buffer.split(b"\n", 1)[0].decode("utf-8", "replace")


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def jetson_facts(root: str = "/", runner: ToolRunner = run_tool) -> Optional[Dict[str, Any]]:
    """None unless this is a Jetson; otherwise every fact the tools would give."""
    if not is_jetson(root):
        return None
    release_text = read_text(root, "/etc/nv_tegra_release")
    facts: Dict[str, Any] = {
        "model": device_tree_model(root),
        "l4t": parse_nv_tegra_release(release_text) if release_text else None,
    }
    errors = []
    nvpmodel = runner(["nvpmodel", "-q"])
    facts["power_mode"] = parse_nvpmodel(nvpmodel.text) if nvpmodel.text is not None else None
    if nvpmodel.error:
        errors.append(nvpmodel.error)
    clocks = runner(["jetson_clocks", "--show"])
    facts["clocks"] = parse_jetson_clocks(clocks.text) if clocks.text is not None else None
    if clocks.error:
        errors.append(clocks.error + " (it usually needs root)")
    facts["tegrastats"] = sample_tegrastats()
    if "error" in facts["tegrastats"]:
        errors.append(facts["tegrastats"]["error"])
    facts["errors"] = errors
    return facts


def _int(value: Optional[str]) -> Optional[int]:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None
