"""A tiny digits CNN (conv+BN+ReLU, depthwise, residual add, pooling, dense softmax) trained
once per session: small enough that QAT tests take seconds."""

from __future__ import annotations

from pathlib import Path

import pytest


def build_small_model(keras, shape):
    layers = keras.layers
    inputs = keras.Input(shape, name="pixels")
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    y = layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = layers.ReLU(6.0, name="dw_relu")(y)
    y = layers.Conv2D(16, 1, name="pw")(y)
    x = layers.Add(name="residual")([x, y])
    x = layers.MaxPooling2D(name="pool")(x)
    x = layers.Conv2D(32, 3, activation="relu", name="conv")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(10, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="small_digits")


@pytest.fixture(scope="session")
def small_model_path(tmp_path_factory, digits) -> Path:
    from edgeprune import _tf

    keras = _tf.keras()
    keras.utils.set_random_seed(0)
    model = build_small_model(keras, digits.sample_shape)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(digits.x_train, digits.y_train, epochs=12, batch_size=64, verbose=0)
    path = tmp_path_factory.mktemp("qat") / "small.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def pruned_model_path(small_model_path, tmp_path_factory) -> Path:
    """The small model one-shot pruned to 80 % (every kernel layer)."""
    import edgeprune as ep

    result = ep.prune(str(small_model_path), 0.8, min_params=1)
    path = tmp_path_factory.mktemp("qat") / "pruned.keras"
    result.model.save(path)
    return path
