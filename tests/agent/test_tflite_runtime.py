"""The agent on tflite-runtime 2.14, the runtime many boards still have (needs numpy < 2).

It cannot share the main venv, so a second venv with only numpy 1.26 and tflite-runtime is
built once under tests/.cache/ (skipped where the package index cannot be reached).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from device_agents.protocol import Result

from .conftest import agent_env

PACKAGES = ("numpy==1.26.4", "tflite-runtime==2.14.0")


@pytest.fixture(scope="session")
def tflite_runtime_python(cached_artifact) -> Path:
    if sys.version_info >= (3, 12):
        pytest.skip("tflite-runtime 2.14 has no wheel for this Python")
    key = f"py{sys.version_info[0]}{sys.version_info[1]}-" + "-".join(PACKAGES).replace("==", "")

    def build(path: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, capture_output=True)
        subprocess.run(
            [
                str(path / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                *PACKAGES,
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )

    try:
        venv = cached_artifact("venv-tflite-runtime", key, build)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot build a tflite-runtime venv here: {exc}")
    return venv / "bin" / "python"


def agent_in(python: Path, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(python), "-m", "device_agents", *map(str, args)],
        capture_output=True,
        text=True,
        env=agent_env(),
        timeout=300,
    )


def test_tflite_runtime_is_found_named_and_measured(tflite_runtime_python, agent_models, spool):
    doctor = json.loads(
        agent_in(tflite_runtime_python, "doctor", "--spool", spool, "--json").stdout
    )
    assert doctor["runtime"] == {"name": "tflite_runtime", "version": "2.14.0"}
    assert doctor["runtimes_available"] == ["tflite_runtime"]
    for options in ([], ["--no-xnnpack"]):
        proc = agent_in(
            tflite_runtime_python,
            "run",
            agent_models.dense,
            "--runs",
            "3",
            "--spool",
            spool,
            "--json",
            *options,
        )
        assert proc.returncode == 0, proc.stderr
        result = Result.from_json(proc.stdout)
        assert result.runtime == {"name": "tflite_runtime", "version": "2.14.0"}
        assert result.measurements[0].xnnpack is (options == [])


def test_int8_on_tflite_runtime_is_flagged(tflite_runtime_python, agent_models, spool):
    proc = agent_in(
        tflite_runtime_python, "run", agent_models.int8, "--runs", "3", "--spool", spool, "--json"
    )
    result = Result.from_json(proc.stdout)
    assert result.status == "ok"
    assert "int8_without_xnnpack" in {w.code for w in result.warnings}


def test_forcing_a_runtime_this_board_lacks(tflite_runtime_python, agent_models, spool):
    proc = agent_in(
        tflite_runtime_python,
        "run",
        agent_models.dense,
        "--runtime",
        "ai_edge_litert",
        "--spool",
        spool,
        "--json",
    )
    assert proc.returncode == 1
    result = Result.from_json(proc.stdout)
    assert result.error_kind == "runtime_missing" and "pip install ai-edge-litert" in result.error
