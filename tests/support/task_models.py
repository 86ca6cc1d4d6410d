"""Small real models and generated data for the task tests (regression, segmentation).

Builders only: each returns a compiled Keras model or numpy arrays from a fixed seed, so
any test (tasks, prune, channels, recipes) can train one in seconds and compare numbers.

    x, y = regression_data(600)                  # x [N, 8] float32, y [N, 1] float32
    model = regression_mlp(); model.fit(x, y, epochs=...)
    x, masks = disc_masks(200)                   # x [N, 32, 32, 1], masks [N, 32, 32] in {0, 1, 2}
    model = unet(); model.fit(x, masks, epochs=...)
"""

from __future__ import annotations

from typing import Any

import numpy as np

SEGMENT_CLASSES = ("background", "disc", "square")


def regression_data(count: int = 600, features: int = 8, seed: int = 0) -> tuple[np.ndarray, ...]:
    """x [N, features] and a smooth non-linear target y [N, 1] with a little noise."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(count, features)).astype(np.float32)
    weights = np.linspace(-1.5, 1.5, features, dtype=np.float32)
    y = x @ weights + 0.8 * np.sin(2.0 * x[:, 0]) + 0.5 * x[:, 1] * x[:, 2]
    y = y + rng.normal(0.0, 0.05, size=count)
    return x, y.astype(np.float32)[:, None]


def regression_mlp(features: int = 8, seed: int = 0) -> Any:
    """Dense 32 -> Dense 16 -> Dense 1 (linear), compiled with MSE."""
    from edgeprune import _tf

    keras = _tf.keras()
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((features,), name="features")
    hidden = keras.layers.Dense(32, activation="relu", name="dense1")(inputs)
    hidden = keras.layers.Dense(16, activation="relu", name="dense2")(hidden)
    outputs = keras.layers.Dense(1, name="target")(hidden)
    model = keras.Model(inputs, outputs, name="regression_mlp")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


def disc_masks(count: int = 200, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy grey images with a bright disc (class 1) and a dimmer square (class 2) each.

    x [N, size, size, 1] float32 in about [0, 1]; masks [N, size, size] int64 of
    SEGMENT_CLASSES. The square is drawn last, so where the two overlap it wins.
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size]
    x = np.empty((count, size, size, 1), np.float32)
    masks = np.zeros((count, size, size), np.int64)
    for i in range(count):
        mask = np.zeros((size, size), np.int64)
        radius = rng.uniform(size * 0.12, size * 0.25)
        cy, cx = rng.uniform(radius, size - radius, size=2)
        mask[(rows - cy) ** 2 + (cols - cx) ** 2 <= radius**2] = 1
        side = int(rng.integers(size // 6, size // 3))
        top, left = rng.integers(0, size - side, size=2)
        mask[top : top + side, left : left + side] = 2
        image = np.choose(mask, [0.1, 0.9, 0.5]) + rng.normal(0.0, 0.08, size=(size, size))
        x[i, ..., 0] = image
        masks[i] = mask
    return x, masks


def unet(size: int = 32, classes: int = len(SEGMENT_CLASSES), seed: int = 0) -> Any:
    """A two-level U-Net: Conv, down-sample, Conv, up-sample, Concatenate skip, logits.

    Output [N, size, size, classes] logits; compiled with sparse categorical cross-entropy.
    """
    from edgeprune import _tf

    keras = _tf.keras()
    layers = keras.layers
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 1), name="image")
    skip = layers.Conv2D(8, 3, padding="same", activation="relu", name="enc1")(inputs)
    down = layers.MaxPooling2D(2, name="down")(skip)
    middle = layers.Conv2D(16, 3, padding="same", activation="relu", name="enc2")(down)
    middle = layers.Conv2D(16, 3, padding="same", activation="relu", name="mid")(middle)
    up = layers.UpSampling2D(2, name="up")(middle)
    merged = layers.Concatenate(name="skip")([up, skip])
    decoded = layers.Conv2D(8, 3, padding="same", activation="relu", name="dec1")(merged)
    logits = layers.Conv2D(classes, 1, name="classes")(decoded)
    model = keras.Model(inputs, logits, name="unet")
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model
