"""Pytest fixtures around `support.sshd`, importable by any conftest:

    from support.fixtures import sshd_fleet, tiny_tflite  # noqa: F401  (in a conftest.py)

`sshd_fleet(count=2, devices=[...], trust=True)` starts real sshd devices for one test and
stops them afterwards; `tiny_tflite` is a real, tiny .tflite (built once, cached).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.sshd import DeviceSpec, SshdFleet, sshd_available

TINY_MODEL_KEY_SOURCE = b"tiny-dense-v1: Input(4) -> Dense(3, softmax), seed 0"


@pytest.fixture
def sshd_fleet(tmp_path: Path) -> Iterator:
    """Factory: sshd_fleet(count=2, *, devices=None, trust=True) -> SshdFleet (closed at teardown)."""
    if not sshd_available():
        pytest.skip("OpenSSH server not installed (apt-get install -y openssh-server)")
    started: list[SshdFleet] = []

    def start(
        count: int = 2, *, devices: list[DeviceSpec] | None = None, trust: bool = True
    ) -> SshdFleet:
        fleet = SshdFleet.start(
            tmp_path / f"fleet{len(started)}", count, devices=devices, trust=trust
        )
        started.append(fleet)
        return fleet

    yield start
    for fleet in started:
        fleet.close()


def build_tiny_tflite(path: Path, units: int = 3, inputs: int = 4, seed: int = 0) -> None:
    """A real float32 TFLite model (Dense + softmax), converted by TensorFlow."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from edgeprune._tf import keras, tf

    k = keras()
    k.utils.set_random_seed(seed)
    model = k.Sequential([k.Input((inputs,)), k.layers.Dense(units, activation="softmax")])
    converter = tf().lite.TFLiteConverter.from_keras_model(model)
    path.write_bytes(converter.convert())


@pytest.fixture(scope="session")
def tiny_tflite(cached_artifact) -> Path:
    key = hashlib.sha256(TINY_MODEL_KEY_SOURCE).hexdigest()[:16]
    return cached_artifact("tiny-dense.tflite", key, build_tiny_tflite)


@pytest.fixture(scope="session")
def tiny_tflite_b(cached_artifact) -> Path:
    """A second, different tiny model (more units): a second row in every table."""
    key = hashlib.sha256(TINY_MODEL_KEY_SOURCE + b"-b").hexdigest()[:16]
    return cached_artifact(
        "tiny-dense-b.tflite", key, lambda p: build_tiny_tflite(p, units=64, inputs=4, seed=1)
    )


@pytest.fixture(scope="session")
def large_tflite(cached_artifact) -> Path:
    """A real ~10 MB float32 model (Dense 1280→2048): big enough to cut an upload midway."""
    key = hashlib.sha256(TINY_MODEL_KEY_SOURCE + b"-large").hexdigest()[:16]
    return cached_artifact(
        "large-dense.tflite", key, lambda p: build_tiny_tflite(p, units=2048, inputs=1280, seed=2)
    )
