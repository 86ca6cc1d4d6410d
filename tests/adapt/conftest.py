"""A tiny conv model on digits, trained a little, shared by the adapt tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.cache_keys import source_key


def build_tiny_model(seed: int = 0) -> object:
    """Two prunable conv groups of 32 filters (widths 32 or 16 at granularity 16)."""
    from edgeprune import _tf

    keras = _tf.keras()
    layers = keras.layers
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1), name="digits")
    x = layers.Conv2D(32, 3, padding="same", name="conv_a")(inputs)
    x = layers.BatchNormalization(name="bn_a")(x)
    x = layers.ReLU(name="relu_a")(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv_b")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(10, name="logits")(x)
    return keras.Model(inputs, outputs, name="tiny_adapt")


@pytest.fixture(scope="session")
def tiny_model_path(cached_artifact, digits) -> Path:
    from edgeprune.demo import compile_for_training

    def build(path: Path) -> None:
        model = build_tiny_model()
        compile_for_training(model)
        model.fit(digits.x_train, digits.y_train, epochs=15, batch_size=32, verbose=0)
        model.save(path)

    key = source_key("tests/adapt/conftest.py", "edgeprune/data.py")
    return cached_artifact("adapt-tiny.keras", key, build)


@pytest.fixture
def isolated(tmp_path, monkeypatch) -> Path:
    """Own data dir (local spool, table, results DB) for one test."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.delenv("EDGEPRUNE_RESULTS_DB", raising=False)
    return tmp_path
