"""The agent as a systemd user service, from device_agents/systemd/edgeprune-agent.service.

The unit in the package is a template: its paths are filled in for each board (the venv's
python and the spool). Boards without systemd get the one command to run instead.
"""

from __future__ import annotations

import shlex
import tempfile
from pathlib import Path

import device_agents
from edgeprune.errors import DeviceError
from edgeprune.fleet.probe import DeviceFacts
from edgeprune.fleet.session import DeviceSession

UNIT_NAME = "edgeprune-agent.service"


def unit_template() -> str:
    path = Path(device_agents.__file__).resolve().parent / "systemd" / UNIT_NAME
    if not path.is_file():
        raise DeviceError(f"the agent package has no {UNIT_NAME} template ({path})")
    return path.read_text(encoding="utf-8")


def render_unit(template: str, python: str, spool: str) -> str:
    """Fill @PYTHON@ and @SPOOL@; a template without them is a packaging bug."""
    values = {"PYTHON": _systemd_word(python), "SPOOL": _systemd_word(spool)}
    text = template
    for key, value in values.items():
        if f"@{key}@" not in text:
            raise DeviceError(f"{UNIT_NAME}: the template has no @{key}@ placeholder")
        text = text.replace(f"@{key}@", value)
    return text


def _systemd_word(value: str) -> str:
    """One ExecStart word that systemd reads back as exactly `value` (systemd.unit(5)).

    `%` starts a specifier and `$` a variable, so they are doubled; a word with spaces or a
    single quote is double-quoted (inside double quotes a `'` is an ordinary character).
    """
    if any(ch in value for ch in '"\\') or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise DeviceError(
            f"path {value!r} cannot go into a systemd unit (a double quote, backslash or "
            "control character in it): choose an agent path and spool without them"
        )
    word = value.replace("%", "%%").replace("$", "$$")
    quote = "'" in value or any(ch.isspace() for ch in value) or value == ";"
    return f'"{word}"' if quote else word


def install_unit(session: DeviceSession, facts: DeviceFacts) -> None:
    """Write the unit to ~/.config/systemd/user, reload, enable and (re)start it."""
    transport = session.transport
    unit_dir = transport.expand_path("~/.config/systemd/user")
    transport.makedirs(unit_dir)
    text = render_unit(unit_template(), session.agent_python, session.spool)
    with tempfile.NamedTemporaryFile("w", suffix=".service", delete=False) as handle:
        handle.write(text)
        local = handle.name
    try:
        target = f"{unit_dir}/{UNIT_NAME}"
        transport.upload(local, target + ".part")
        transport.rename(target + ".part", target)
    finally:
        Path(local).unlink(missing_ok=True)
    env = {"XDG_RUNTIME_DIR": f"/run/user/{facts.uid}"}
    for argv in (
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", UNIT_NAME],
        ["systemctl", "--user", "restart", UNIT_NAME],
    ):
        result = transport.run(argv, timeout=60, env=env)
        if not result.ok:
            raise DeviceError(
                f"device {session.device.name}: {' '.join(argv)} failed: {result.last_error_line()}"
            )


def systemd_hint(session: DeviceSession) -> str:
    """How to keep the daemon running by hand (bench also drains the queue itself)."""
    command = " ".join(
        shlex.quote(w)
        for w in (session.agent_python, "-m", "device_agents", "serve", "--spool", session.spool)
    )
    return (
        f"no systemd user session on {session.device.name}; to keep a daemon running, start: "
        f"nohup {command} >/dev/null 2>&1 &  (bench runs `serve --once` itself when none runs)"
    )
