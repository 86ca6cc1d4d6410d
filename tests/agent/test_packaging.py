"""The systemd unit and the agent's Python 3.8 floor, checked by the real tools."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

UNIT = REPO / "device_agents" / "systemd" / "edgeprune-agent.service"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(UNIT.read_text())
    return parser


def test_unit_is_a_restarting_user_service_that_is_never_root():
    unit = _unit()
    service = unit["Service"]
    assert service["ExecStart"] == "@PYTHON@ -m device_agents serve --spool @SPOOL@"
    assert service["Restart"] == "on-failure"
    assert service["KillMode"] == "mixed" and service["UMask"] == "0077"
    assert "User" not in service  # a user unit runs as its user
    assert unit["Install"]["WantedBy"] == "default.target"
    notes = (UNIT.parent / "README.md").read_text()
    assert "systemctl --user" in notes and "User=edgeprune" in notes and "never" in notes.lower()


def test_rendered_unit_passes_systemd_analyze(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    rendered = tmp_path / "edgeprune-agent.service"
    rendered.write_text(
        UNIT.read_text()
        .replace("@PYTHON@", sys.executable)
        .replace("@SPOOL@", str(tmp_path / "spool"))
    )
    proc = subprocess.run(
        [analyze, "verify", "--man=no", str(rendered)], capture_output=True, text=True, timeout=60
    )
    problems = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if "edgeprune-agent.service" in line
    ]
    assert proc.returncode == 0 and not problems, proc.stdout + proc.stderr


def test_agent_source_runs_on_python_38():
    vermin = Path(sys.executable).parent / "vermin"
    if not vermin.exists():
        pytest.skip("vermin is not installed")
    proc = subprocess.run(
        [
            str(vermin),
            "--target=3.8-",
            "--no-tips",
            "--violations",
            "--eval-annotations",
            "device_agents/",
        ],
        capture_output=True,
        text=True,
        cwd=str(REPO),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
