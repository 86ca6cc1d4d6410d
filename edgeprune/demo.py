"""The demo model: a small MobileNet-style CNN on scikit-learn's digits.

It is built to XNNPACK's sparse-path rules (3x3 stride-2 first conv with symmetric padding
and 3 input channels, depthwise 3x3 + 1x1 blocks, global average pooling), so the whole
product - prune, convert, check the sparse path, deploy, measure - can be shown on data
that ships inside a package and trains in seconds on a laptop CPU.
"""

from __future__ import annotations

from typing import Any

from edgeprune import _tf
from edgeprune.data import Dataset
from edgeprune.progress import keras_callbacks

DEMO_INPUT_SHAPE = (8, 8, 1)
DEMO_CLASSES = 10


def build_demo_model(
    input_shape: tuple[int, ...] = DEMO_INPUT_SHAPE,
    classes: int = DEMO_CLASSES,
    width: int = 32,
    seed: int = 0,
) -> Any:
    """Functional Keras model; `width` scales every layer (1x1 convs go width→2w→4w→4w)."""
    keras = _tf.keras()
    layers = keras.layers
    keras.utils.set_random_seed(seed)

    inputs = keras.Input(input_shape, name="digits")
    x = inputs
    if input_shape[-1] == 1:  # gray → 3 channels, as the sparse path's first conv wants
        x = layers.Concatenate(name="to_rgb")([x, x, x])
    x = layers.UpSampling2D(2, name="upsample")(x)
    x = layers.ZeroPadding2D(1, name="stem_pad")(x)
    x = layers.Conv2D(width, 3, strides=2, padding="valid", use_bias=False, name="stem_conv")(x)
    x = layers.BatchNormalization(momentum=0.9, name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)

    def block(x: Any, filters: int, stride: int, name: str) -> Any:
        if stride == 2:
            x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
            x = layers.DepthwiseConv2D(
                3, strides=2, padding="valid", use_bias=False, name=f"{name}_dw"
            )(x)
        else:
            x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dw")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_dw_bn")(x)
        x = layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
        x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_pw_bn")(x)
        return layers.ReLU(6.0, name=f"{name}_pw_relu")(x)

    x = block(x, 2 * width, 1, "block1")
    x = block(x, 4 * width, 2, "block2")
    x = block(x, 4 * width, 1, "block3")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(0.1, name="dropout")(x)
    outputs = layers.Dense(classes, name="classifier")(x)
    return keras.Model(inputs, outputs, name="digits_mobilenet")


def compile_for_training(model: Any, learning_rate: float = 1e-3) -> Any:
    keras = _tf.keras()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def train_demo_model(
    dataset: Dataset, epochs: int = 30, seed: int = 0, batch_size: int = 64
) -> Any:
    """Train the demo model to ~97 % top-1 on digits in a few seconds of CPU."""
    keras = _tf.keras()
    model = build_demo_model(dataset.sample_shape, dataset.num_classes, seed=seed)
    compile_for_training(model)
    keras.utils.set_random_seed(seed)
    model.fit(
        dataset.x_train,
        dataset.y_train,
        validation_data=(dataset.x_val, dataset.y_val),
        epochs=epochs,
        batch_size=batch_size,
        verbose=0,
        callbacks=keras_callbacks("train demo model"),
    )
    return model
