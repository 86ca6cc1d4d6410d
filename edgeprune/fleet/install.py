"""`agent install`: put device_agents on a board, with a venv and a runtime, and start it.

Layout on the board (all inside the spool)::

    <spool>/agent/device_agents/   the package, swapped in whole (re-running upgrades it)
    <spool>/venv/                  python -m venv --system-site-packages --without-pip
    <spool>/wheels/                wheels pushed by --offline

The venv sees the system's packages, so a runtime the board already has is used as is;
otherwise the runtime is pip-installed (the board reaches an index) or, with `--offline`,
downloaded here for the board's platform and unpacked there. A `.pth` file puts the agent
(and, when the board's python is itself a venv, that venv's packages) on the path.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import device_agents
from edgeprune.errors import DeviceError, UserError
from edgeprune.fleet.fanout import GroupResult
from edgeprune.fleet.inventory import Device
from edgeprune.fleet.probe import DeviceFacts, missing_runtime_message, probe_device
from edgeprune.fleet.session import ConnectOptions, DeviceSession, each_session
from edgeprune.fleet.systemd import install_unit, systemd_hint
from edgeprune.fleet.wheels import download_wheels

RUNTIME_CHOICES = ("auto", "system", "ai-edge-litert", "tflite-runtime")
_MODULE_OF = {"ai-edge-litert": "ai_edge_litert", "tflite-runtime": "tflite_runtime"}

Say = Callable[[str, str], None]
"""say(device_name, message): progress lines for the user."""

# Runs on the board with its own python: swap the staged package in, make the venv, write .pth.
_ACTIVATE_SCRIPT = r"""
import json, os, platform, shutil, site, sys, venv
spool, staged = sys.argv[1], sys.argv[2]
agent_root = os.path.join(spool, "agent")
target = os.path.join(agent_root, "device_agents")
old = None
if os.path.exists(target):
    old = staged.replace(".new-", ".old-")
    os.rename(target, old)
os.rename(staged, target)
for name in os.listdir(agent_root):
    if name.startswith("device_agents.old-") or name.startswith("device_agents.new-"):
        shutil.rmtree(os.path.join(agent_root, name), ignore_errors=True)
env_dir = os.path.join(spool, "venv")
cfg = os.path.join(env_dir, "pyvenv.cfg")
want = platform.python_version()
have = None
if os.path.isfile(cfg):
    with open(cfg) as handle:
        for line in handle:
            key, _, value = line.partition("=")
            if key.strip() in ("version", "version_info"):
                have = value.strip()
created = False
if have != want or not os.path.exists(os.path.join(env_dir, "bin", "python")):
    venv.EnvBuilder(system_site_packages=True, with_pip=False, clear=True, symlinks=True).create(env_dir)
    created = True
site_dir = os.path.join(env_dir, "lib", "python%d.%d" % sys.version_info[:2], "site-packages")
paths = [agent_root]
if sys.prefix != getattr(sys, "base_prefix", sys.prefix):
    paths += [p for p in site.getsitepackages() if os.path.isdir(p)]
with open(os.path.join(site_dir, "edgeprune_agent.pth"), "w") as handle:
    handle.write("\n".join(paths) + "\n")
print(json.dumps({"venv_created": created, "site_packages": site_dir, "python": want}))
"""

# Unpacks wheels (zip files) into the venv: no pip or network needed on the board.
_UNPACK_SCRIPT = r"""
import json, os, sys, zipfile
site_dir, wheels = sys.argv[1], sys.argv[2:]
done = []
for wheel in wheels:
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if member.startswith("/") or ".." in member.split("/"):
                raise SystemExit("error: unsafe path in %s: %s" % (wheel, member))
        archive.extractall(site_dir)
    done.append(os.path.basename(wheel))
    os.unlink(wheel)  # unpacked: no need to keep the archive on the board's disk
print(json.dumps({"unpacked": done}))
"""


@dataclass
class InstallReport:
    """What `agent install` did on one device."""

    device: str
    python: str = ""
    agent_version: str = ""
    runtime: dict[str, Any] | None = None
    machine: str = ""
    board: str = ""
    cpu_model: str = ""
    sparse_path: dict[str, Any] | None = None  # can this runtime take XNNPACK's sparse path here
    runtime_source: str = ""  # "system" | "pip" | "offline" | "host"
    venv: str = ""
    venv_created: bool = False
    service: str = ""  # "started" | "not available" | "host"
    hint: str = ""
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def check_runtime(runtime: str) -> None:
    """A `UserError` naming `runtime` unless it is one of `RUNTIME_CHOICES`."""
    if runtime not in RUNTIME_CHOICES:
        raise UserError(
            f"runtime {runtime!r} is unknown; choose one of {', '.join(RUNTIME_CHOICES)}",
            params=("runtime",),
        )


def install_agents(
    devices: list[Device],
    *,
    runtime: str = "auto",
    offline: bool = False,
    start_service: bool = True,
    connect: ConnectOptions | None = None,
    parallel: int | None = 4,
    on_note: Say | None = None,
) -> GroupResult[InstallReport]:
    """`install_agent` on every device (at most `parallel` at once); one outcome per device.

    `on_note(device_name, message)` hears each step. The runtime choice is checked before any
    device is touched.
    """
    check_runtime(runtime)

    def work(session: DeviceSession) -> InstallReport:
        return install_agent(
            session, runtime=runtime, offline=offline, start_service=start_service, say=on_note
        )

    return each_session(devices, work, connect=connect, parallel=parallel)


def install_agent(
    session: DeviceSession,
    *,
    runtime: str = "auto",
    offline: bool = False,
    start_service: bool = True,
    say: Say | None = None,
) -> InstallReport:
    """Install or upgrade the agent on one device; ends with the agent's own doctor."""
    check_runtime(runtime)
    name = session.device.name

    def note(message: str) -> None:
        if say:
            say(name, message)

    report = InstallReport(device=name)
    if session.device.is_local:
        report.runtime_source = report.service = "host"
        report.hint = "local runs the agent from this host's edgeprune installation"
        return _finish(session, report)
    facts = probe_device(session.transport, session.device.python, session.spool)
    report.python = facts.python
    note(f"Python {facts.python} on {facts.machine}")
    if runtime == "system" and not facts.runtimes:
        raise DeviceError(missing_runtime_message(name, facts))  # before anything is written
    staged = session.path("agent", f"device_agents.new-{secrets.token_hex(4)}")
    _copy_agent(session, staged, note)
    activate = _run_script(
        session, session.device.python, _ACTIVATE_SCRIPT, [session.spool, staged]
    )
    report.venv = session.path("venv")
    report.venv_created = bool(activate.get("venv_created"))
    site_dir = str(activate["site_packages"])
    venv_facts = probe_device(session.transport, session.agent_python, session.spool)
    report.runtime_source = _ensure_runtime(session, venv_facts, runtime, offline, site_dir, note)
    if start_service and facts.systemd_user:
        install_unit(session, facts)
        report.service = "started"
        note("systemd user service edgeprune-agent started")
    else:
        report.service = "not available" if not facts.systemd_user else "not started"
        report.hint = systemd_hint(session)
    return _finish(session, report)


def _finish(session: DeviceSession, report: InstallReport) -> InstallReport:
    session.agent.close()  # a session opened before the install still runs the old agent
    doctor = session.agent.doctor()
    report.agent_version = str(doctor.get("agent_version", ""))
    report.runtime = doctor.get("runtime")
    device = doctor.get("device") or {}
    report.machine = str(device.get("arch") or "")
    report.board = str(device.get("board") or "")
    report.cpu_model = str(device.get("cpu_model") or "")
    report.sparse_path = doctor.get("sparse_path")
    report.problems = [str(p) for p in doctor.get("problems", [])]
    if not report.python:
        report.python = str(doctor.get("python", ""))
    if not report.runtime:
        facts = probe_device(session.transport, session.agent_python, session.spool)
        raise DeviceError(missing_runtime_message(session.device.name, facts))
    return report


def _copy_agent(session: DeviceSession, staged: str, note: Callable[[str], None]) -> None:
    """Upload the package into a fresh staging dir (swapped in by the activate script)."""
    package = Path(device_agents.__file__).resolve().parent
    transport = session.transport
    transport.makedirs(session.spool)
    transport.makedirs(session.path("agent"))
    files = [
        p
        for p in sorted(package.rglob("*"))
        if p.is_file()
        and "__pycache__" not in p.parts
        and p.suffix in (".py", ".service", ".txt", ".json")
    ]
    for path in files:
        relative = path.relative_to(package).as_posix()
        parent = "/".join([staged, *relative.split("/")[:-1]])
        transport.makedirs(parent)
        transport.upload(str(path), f"{staged}/{relative}")
    note(f"agent {device_agents.__version__} copied ({len(files)} files)")


def _run_script(
    session: DeviceSession, python: str, script: str, args: list[str], timeout: float = 300
) -> dict[str, Any]:
    result = session.transport.run([python, "-", *args], timeout=timeout, stdin=script.encode())
    if not result.ok:
        raise DeviceError(
            f"device {session.device.name}: install step failed: {result.last_error_line()}"
        )
    try:
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise DeviceError(f"device {session.device.name}: install step printed no result") from None


def _ensure_runtime(
    session: DeviceSession,
    facts: DeviceFacts,
    runtime: str,
    offline: bool,
    site_dir: str,
    note: Callable[[str], None],
) -> str:
    """Make a TFLite runtime importable by the venv; returns where it came from."""
    name = session.device.name
    wanted_module = _MODULE_OF.get(runtime)
    have = facts.runtimes
    if (wanted_module and wanted_module in have) or (not wanted_module and have):
        found = wanted_module or next(iter(have))
        note(f"runtime {found} {have[found]} already on the board")
        return "system"
    if runtime == "system":
        raise DeviceError(missing_runtime_message(name, facts))
    package = runtime if wanted_module else facts.recommended_runtime()
    if offline:
        _install_offline(session, facts, package, site_dir, note)
        return "offline"
    _install_with_pip(session, facts, package, note)
    return "pip"


def _install_with_pip(
    session: DeviceSession, facts: DeviceFacts, package: str, note: Callable[[str], None]
) -> None:
    python = session.agent_python
    transport = session.transport
    if not facts.pip:
        boot = transport.run([python, "-m", "ensurepip", "--default-pip"], timeout=300)
        if not boot.ok:
            raise DeviceError(
                f"device {session.device.name}: pip is not available on the board "
                f"({boot.last_error_line()}); install python3-pip there, or use --offline"
            )
    note(f"pip install {package} on the board")
    requirements = [package, "numpy<2"] if package == "tflite-runtime" else [package]
    result = transport.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            *requirements,
        ],
        timeout=1800,
    )
    if not result.ok:
        raise DeviceError(
            f"device {session.device.name}: pip install {package} failed on the board "
            f"({result.last_error_line()}); if the board has no internet, rerun with --offline"
        )


def _install_offline(
    session: DeviceSession,
    facts: DeviceFacts,
    package: str,
    site_dir: str,
    note: Callable[[str], None],
) -> None:
    transport = session.transport
    wheel_dir = session.path("wheels")
    with tempfile.TemporaryDirectory(prefix="edgeprune-wheels-") as tmp:
        note(f"downloading {package} wheels for Python {facts.python} {facts.machine}")
        wheels = download_wheels(facts, package, Path(tmp))
        transport.makedirs(wheel_dir)
        remote = []
        for wheel in wheels:
            target = f"{wheel_dir}/{wheel.name}"
            part = target + ".part"
            transport.upload(str(wheel), part)
            transport.rename(part, target)
            remote.append(target)
    note(f"unpacking {len(remote)} wheels on the board")
    _run_script(session, session.agent_python, _UNPACK_SCRIPT, [site_dir, *remote], timeout=900)
