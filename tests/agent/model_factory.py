"""The small real models the agent tests run (built with Keras, converted with tf.lite once).

Kept tiny (32x32 inputs, a few thousand weights) so each benchmark child takes a fraction of
a second; the cache key is this file's source, so editing it rebuilds them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

MODEL_NAMES = ("dense.tflite", "sparse.tflite", "int8.tflite", "two_inputs.tflite")


def _tiny_net(keras, seed: int):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((32, 32, 3), batch_size=1, name="image")
    x = keras.layers.Conv2D(16, 3, padding="valid", activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 1, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def build_models(directory: Path) -> None:
    """Write dense, sparse (DENSIFY ops), full-int8 and two-input models into `directory`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    directory.mkdir(parents=True, exist_ok=True)
    model = _tiny_net(keras, 0)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    (directory / "dense.tflite").write_bytes(converter.convert())

    sparse = _tiny_net(keras, 0)
    kernel, bias = sparse.layers[2].get_weights()
    kernel[np.random.default_rng(0).random(kernel.shape) < 0.85] = 0.0
    sparse.layers[2].set_weights([kernel, bias])
    converter = tf.lite.TFLiteConverter.from_keras_model(sparse)
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    (directory / "sparse.tflite").write_bytes(converter.convert())

    def representative():
        rng = np.random.default_rng(1)
        for _ in range(8):
            yield [rng.uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    (directory / "int8.tflite").write_bytes(converter.convert())

    keras.utils.set_random_seed(2)
    a = keras.Input((8,), batch_size=1, name="a")
    b = keras.Input((4,), batch_size=1, name="b")
    joined = keras.layers.Concatenate()([a, b])
    out = keras.layers.Dense(3)(joined)
    two = keras.Model([a, b], out)
    converter = tf.lite.TFLiteConverter.from_keras_model(two)
    (directory / "two_inputs.tflite").write_bytes(converter.convert())
