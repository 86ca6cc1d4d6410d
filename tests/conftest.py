"""Fixtures shared by the whole suite: real files, real models, the real CLI."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.cache_keys import source_key

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / "tests" / ".cache"


@dataclass
class CliOutcome:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run `edgeprune ARGS...` in-process; returns exit code, stdout and stderr."""
    from edgeprune.cli.app import run

    def invoke(*args: str) -> CliOutcome:
        capsys.readouterr()
        code = run([str(a) for a in args])
        captured = capsys.readouterr()
        return CliOutcome(code, captured.out, captured.err)

    return invoke


@pytest.fixture(scope="session")
def digits():
    from edgeprune.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def cached_artifact() -> Iterator:
    """cached_artifact(name, key, build) -> Path: build once per source version, shared by workers.

    `build(path)` must write the file at `path`. An exclusive lock keeps two xdist workers
    from training the same model at once.
    """
    CACHE.mkdir(parents=True, exist_ok=True)

    def get(name: str, key: str, build) -> Path:
        target = CACHE / f"{key}-{name}"
        lock_path = CACHE / f".{key}-{name}.lock"
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not target.exists():
                partial = target.with_name(target.name + ".partial" + target.suffix)
                if partial.exists():
                    shutil.rmtree(partial) if partial.is_dir() else partial.unlink()
                build(partial)
                os.replace(partial, target)
        return target

    yield get


@pytest.fixture(scope="session")
def demo_model_path(cached_artifact, digits) -> Path:
    """The digits demo CNN, trained once (20 epochs) and cached across runs."""
    from edgeprune.demo import train_demo_model

    def build(path: Path) -> None:
        model = train_demo_model(digits, epochs=20)
        model.save(path)

    key = source_key("edgeprune/demo.py", "edgeprune/data.py")
    return cached_artifact("demo-dense.keras", key, build)
