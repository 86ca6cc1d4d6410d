"""What a board has before (or without) the agent: Python, platform, runtimes, disk, systemd.

The probe is a Python 3.8-compatible script sent on stdin to the device's interpreter, so
it works on a board that has nothing of ours yet. It imports nothing heavy: runtimes are
found with `find_spec`, their versions read from package metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from edgeprune.errors import DeviceError
from edgeprune.fleet.transport import Transport

MIN_PYTHON = (3, 8)
RUNTIME_PACKAGES = {
    "ai_edge_litert": "ai-edge-litert",
    "tflite_runtime": "tflite-runtime",
    "tensorflow": "tensorflow",
}

PROBE_SCRIPT = r"""
import json, os, platform, shutil, site, sys
try:
    from importlib import metadata
except ImportError:
    metadata = None
from importlib.util import find_spec

def version(dist):
    if metadata is None:
        return ""
    try:
        return metadata.version(dist)
    except Exception:
        return ""

spool = sys.argv[1]
runtimes = {}
for module, dists in (("ai_edge_litert", ["ai-edge-litert"]),
                      ("tflite_runtime", ["tflite-runtime", "tflite_runtime"]),
                      ("tensorflow", ["tensorflow", "tensorflow-cpu", "tensorflow-aarch64"])):
    try:
        found = find_spec(module) is not None
    except Exception:
        found = False
    if found:
        runtimes[module] = next((v for v in map(version, dists) if v), "unknown")
path = spool
while not os.path.exists(path) and os.path.dirname(path) != path:
    path = os.path.dirname(path)
try:
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
except OSError:
    free = None
agent_init = os.path.join(spool, "agent", "device_agents", "__init__.py")
agent_version = None
if os.path.isfile(agent_init):
    with open(agent_init) as handle:
        for line in handle:
            if line.startswith("__version__"):
                agent_version = line.split("=", 1)[1].strip().strip("\"'")
venv_python = os.path.join(spool, "venv", "bin", "python")
try:
    site_packages = site.getsitepackages()
except Exception:
    site_packages = []
uid = os.getuid() if hasattr(os, "getuid") else 0
print(json.dumps({
    "python": platform.python_version(),
    "executable": sys.executable,
    "in_venv": sys.prefix != getattr(sys, "base_prefix", sys.prefix),
    "site_packages": site_packages,
    "machine": platform.machine(),
    "system": platform.system(),
    "libc": list(platform.libc_ver()),
    "runtimes": runtimes,
    "numpy": version("numpy") if find_spec("numpy") else None,
    "pip": find_spec("pip") is not None,
    "venv_module": find_spec("venv") is not None and find_spec("ensurepip") is not None,
    "spool": {"path": spool, "exists": os.path.isdir(spool), "free_bytes": free},
    "agent": {"installed": os.path.isfile(agent_init) and os.path.exists(venv_python),
              "version": agent_version, "venv_python": venv_python},
    "systemd_user": bool(shutil.which("systemctl")) and os.path.isdir("/run/systemd/system")
                    and os.path.isdir("/run/user/%d" % uid),
    "home": os.path.expanduser("~"),
    "uid": uid,
}))
"""


@dataclass
class DeviceFacts:
    """What the probe found on one board."""

    python: str
    executable: str
    in_venv: bool
    site_packages: list[str]
    machine: str
    system: str
    libc: list[str]
    runtimes: dict[str, str]
    numpy: str | None
    pip: bool
    spool: dict[str, Any]
    agent: dict[str, Any]
    systemd_user: bool
    home: str = ""
    uid: int = 0
    venv_module: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def python_tuple(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.python.split(".")[:2] if p.isdigit())

    def recommended_runtime(self) -> str:
        """The pip package that has wheels for this board's CPU and Python."""
        if self.machine in ("x86_64", "aarch64", "arm64") and self.python_tuple >= (3, 9):
            return "ai-edge-litert"
        return "tflite-runtime"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def probe_device(transport: Transport, python: str, spool: str, timeout: float = 60) -> DeviceFacts:
    """Run the probe with `python` on the device; a missing interpreter is a clear DeviceError."""
    result = transport.run([python, "-", spool], timeout=timeout, stdin=PROBE_SCRIPT.encode())
    name = transport.device_name
    if result.exit_code == 127 or (
        "No such file or directory" in result.stderr and not result.stdout
    ):
        raise DeviceError(
            f"device {name}: python {python!r} was not found; install Python >= 3.8 on the board "
            "or set `python:` in the inventory to its interpreter"
        )
    if not result.ok:
        raise DeviceError(
            f"device {name}: probing with {python} failed: {result.last_error_line()}"
        )
    try:
        raw = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise DeviceError(
            f"device {name}: {python} printed no probe result (is it Python >= 3.8?)"
        ) from None
    facts = DeviceFacts(**{k: raw.get(k) for k in DeviceFacts.__dataclass_fields__ if k in raw})
    if facts.python_tuple < MIN_PYTHON:
        raise DeviceError(
            f"device {name}: Python {facts.python} is too old; the agent needs >= 3.8 "
            "(set `python:` in the inventory to a newer interpreter)"
        )
    return facts


def missing_runtime_message(device: str, facts: DeviceFacts) -> str:
    """Say exactly which runtime to install on this board, and how."""
    package = facts.recommended_runtime()
    extra = " 'numpy<2'" if package == "tflite-runtime" else ""
    return (
        f"device {device} has no TFLite runtime for Python {facts.python} ({facts.machine}); "
        f"install {package} (pip install {package}{extra}), or run "
        f"`edgeprune agent install {device} --runtime {package}` (add --offline if the board has no internet)"
    )
