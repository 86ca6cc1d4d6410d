"""Wheels for a board with no internet: the host downloads them for the board's CPU and Python.

`pip download --only-binary=:all: --platform ... --python-version X.Y` picks the builds
that would install on the board; the install step then unpacks them into the board's venv
(no pip or index needed there).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edgeprune.errors import DeviceError
from edgeprune.fleet.probe import DeviceFacts

_MANYLINUX_LEGACY = {"2_17": "manylinux2014", "2_12": "manylinux2010", "2_5": "manylinux1"}


def platform_tags(facts: DeviceFacts) -> list[str]:
    """Wheel platform tags a board accepts, newest glibc first (e.g. manylinux_2_36_aarch64 ...)."""
    machine = {"arm64": "aarch64", "armv8l": "armv7l"}.get(facts.machine, facts.machine)
    if facts.system != "Linux":
        raise DeviceError(f"offline install supports Linux boards only, not {facts.system}")
    libc_name, libc_version = [*facts.libc, "", ""][:2]
    tags: list[str] = []
    if libc_name == "glibc" and libc_version:
        major, minor = (int(p) for p in libc_version.split(".")[:2])
        for m in range(minor, 16, -1):
            tags.append(f"manylinux_{major}_{m}_{machine}")
            legacy = _MANYLINUX_LEGACY.get(f"{major}_{m}")
            if legacy:
                tags.append(f"{legacy}_{machine}")
    tags.append(f"linux_{machine}")
    return tags


def runtime_requirements(runtime: str) -> list[str]:
    """The packages to fetch for one runtime (tflite-runtime wants numpy < 2)."""
    if runtime == "tflite-runtime":
        return ["tflite-runtime", "numpy<2"]
    if runtime == "ai-edge-litert":
        return ["ai-edge-litert"]
    raise DeviceError(f"unknown runtime {runtime!r}; choose ai-edge-litert or tflite-runtime")


def download_wheels(
    facts: DeviceFacts, runtime: str, dest: Path, timeout: float = 900
) -> list[Path]:
    """Download the runtime and its dependencies for the board into `dest`."""
    major_minor = ".".join(facts.python.split(".")[:2])
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--no-input",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        major_minor,
        "--dest",
        str(dest),
    ]
    for tag in platform_tags(facts):
        argv += ["--platform", tag]
    argv += runtime_requirements(runtime)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise DeviceError(f"downloading {runtime} wheels took longer than {timeout:g} s") from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        raise DeviceError(
            f"cannot download {runtime} for Python {major_minor} on {facts.machine}: "
            f"{lines[-1] if lines else 'pip failed'}"
        )
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise DeviceError(f"pip downloaded no wheels for {runtime}")
    return wheels
