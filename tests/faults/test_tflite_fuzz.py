"""A fuzz run over the .tflite readers with mutated real models, in a child process.

The host's inspector (edgeprune.workflows.inspection.inspect_tflite) and the agent's pre-run reader
(device_agents.tflite_file) must answer or refuse with their own one-line error for any
bytes; a crash of the process (segfault, abort), a hang or another exception is a finding.
The child reports the mutant that killed it, so a crash is reproducible from the seed.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .harness import REPO

DRIVER = Path(__file__).with_name("fuzz_tflite_driver.py")
AGENT_TESTS = REPO / "tests" / "agent"
TIERS = [
    pytest.param(1500, id="quick"),
    pytest.param(50000, id="deep", marks=pytest.mark.faults),
]


@pytest.fixture(scope="session")
def seed_models(cached_artifact, tiny_tflite) -> list[Path]:
    """Real models: the agent tests' four (conv, sparse with DENSIFY, int8, two inputs) + tiny."""
    sys.path.insert(0, str(REPO / "tests"))
    from agent.model_factory import build_models

    key = hashlib.sha256((AGENT_TESTS / "model_factory.py").read_bytes()).hexdigest()[:16]
    folder = cached_artifact("agent-models", key, build_models)
    names = ("dense", "sparse", "int8", "two_inputs")
    return [folder / f"{name}.tflite" for name in names] + [tiny_tflite]


@pytest.mark.parametrize("count", TIERS)
def test_mutated_models_never_crash_the_readers(count, seed_models, tmp_path, figures):
    pytest.importorskip("edgeprune.tflite", reason="edgeprune.tflite is not there yet")
    progress = tmp_path / "progress.json"
    seed = 20260 + count
    proc = subprocess.run(
        [sys.executable, str(DRIVER), str(seed), str(count), str(progress), str(tmp_path)]
        + [str(p) for p in seed_models],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=str(REPO),
    )
    if proc.returncode < 0:
        last = progress.read_text().strip() if progress.exists() else "?"
        pytest.fail(
            f"the reader killed the process with {signal.Signals(-proc.returncode).name} "
            f"(seed {seed}) on: {last}"
        )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["mutations"] == count
    problems = summary["problems"]
    assert not problems, json.dumps(problems[:10], indent=1)
    rejected = sum(v for k, v in summary["counts"].items() if k.endswith(":rejected"))
    parsed = sum(v for k, v in summary["counts"].items() if k.endswith(":parsed"))
    assert rejected > count // 4  # the mutants were hostile enough to be refused, often
    figures("fuzz", mutations=count, reader_calls=summary["calls"], rejected=rejected,
            parsed=parsed, crashes=0, uncaught=summary["problem_count"])  # fmt: skip
