"""Quantization report tests: a tiny digits CNN, the real converter, debugger and agent."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.cache_keys import source_key
from support.fixtures import isolated_host_state  # noqa: F401


@pytest.fixture(scope="session")
def small_model_path(cached_artifact, digits) -> Path:
    """The demo CNN at width 8, trained 3 epochs (a few seconds), cached across runs."""

    def build(path: Path) -> None:
        from edgeprune.demo import build_demo_model, compile_for_training

        model = build_demo_model(digits.sample_shape, digits.num_classes, width=8)
        compile_for_training(model)
        model.fit(digits.x_train, digits.y_train, epochs=3, batch_size=64, verbose=0)
        model.save(path)

    key = source_key("edgeprune/demo.py", "edgeprune/data.py", "tests/quant/conftest.py")
    return cached_artifact("quant-small.keras", key, build)
