"""Hand-built Keras graphs for the sparse-path rules: one rule broken (or kept) per variant.

`tiny(variant)` is a 32x32 RGB MobileNet-like net built to XNNPACK's rules; each variant
changes one thing. `rules_mobilenet()` is a MobileNetV2-style net (inverted residuals,
ZeroPadding2D(1) + 'valid' at stride 2, 1x1 head, global average pooling) for the
acceptance tests. Pruning here is plain numpy, independent of edgeprune.prune.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# variant -> (eligible once pruned to 90 % and stored sparse?, problem code, text to find)
TINY_VARIANTS: dict[str, tuple[bool, str | None, str | None]] = {
    "base": (True, None, None),
    "rich": (True, None, None),  # tanh, bilinear upsampling, squeeze-and-excite inside
    "dw5x5": (True, None, None),
    "stem_same": (False, "op", "CONV_2D #0"),
    "stem_gray": (False, "op", "1 input channels"),
    "dw_same_s2": (False, "op", "stride-2 SAME padding"),
    # the converter turns Keras' ((0,1),(0,1)) + 'valid' into SAME, as in stock MobileNetV2
    "dw_asym_pad": (False, "op", "stride-2 SAME padding"),
    "dw_pad_top_left": (False, "op", "folded in"),  # a PAD XNNPACK folds, still uneven
    "pw_stride": (False, "op", "1x1 conv with stride 2x2"),
    "dw_dilated": (False, "op", "_TO_"),  # dilation becomes SPACE_TO_BATCH_ND + BATCH_TO_SPACE_ND
    "dw_multiplier": (False, "op", "depth multiplier 2"),
    "dw7x7": (False, "op", "7x7 depthwise kernel"),
    "no_pooling": (False, "no_end", "never reaches a MEAN"),
    "escape": (False, "escape", "also a model output"),
    "scalar_add": (False, "op", "0-D constant"),
    "bn_alone": (False, "op", "1-D constant"),
    "concat": (False, "op", "CONCATENATION"),
    "input_direct": (False, "input", "reads a model input directly"),
}


def _keras() -> Any:
    from edgeprune import _tf

    return _tf.keras()


def tiny(variant: str = "base", seed: int = 0) -> Any:
    keras = _keras()
    layers = keras.layers
    keras.utils.set_random_seed(seed)
    channels = 1 if variant == "stem_gray" else 3
    inputs = keras.Input((32, 32, channels), name="image")
    x = inputs
    if variant == "input_direct":
        x = layers.DepthwiseConv2D(3, padding="same", name="first_dw")(x)
    elif variant == "stem_same":
        x = layers.Conv2D(16, 3, strides=2, padding="same", name="stem")(x)
    else:
        x = layers.ZeroPadding2D(1, name="stem_pad")(x)
        x = layers.Conv2D(16, 3, strides=2, padding="valid", name="stem")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    tap = x

    # block 1, stride 1
    h = layers.Conv2D(48, 1, use_bias=False, name="b1_expand")(x)
    h = layers.ReLU(6.0, name="b1_expand_relu")(h)
    if variant == "scalar_add":
        h = h + 0.5
    if variant == "bn_alone":
        h = layers.BatchNormalization(
            beta_initializer="ones", gamma_initializer="random_uniform", name="b1_lonely_bn"
        )(h)
    if variant == "rich":
        h = layers.Activation("tanh", name="b1_tanh")(h)
    dw = {"dw_dilated": {"dilation_rate": 2}, "dw_multiplier": {"depth_multiplier": 2}}
    kernel = 7 if variant == "dw7x7" else 3
    h = layers.DepthwiseConv2D(kernel, padding="same", name="b1_dw", **dw.get(variant, {}))(h)
    h = layers.ReLU(6.0, name="b1_dw_relu")(h)
    if variant == "rich":  # squeeze-and-excite: MEAN (keepdims) inside the cluster
        se = layers.GlobalAveragePooling2D(keepdims=True, name="b1_se_pool")(h)
        se = layers.Conv2D(8, 1, activation="relu", name="b1_se_reduce")(se)
        se = layers.Conv2D(h.shape[-1], 1, activation="sigmoid", name="b1_se_expand")(se)
        h = layers.Multiply(name="b1_se_scale")([h, se])
    x = layers.Conv2D(16, 1, use_bias=False, name="b1_project")(h)
    if variant == "concat":
        x = layers.Concatenate(name="b1_concat")([x, tap])
    # block 2, stride 2
    h = layers.Conv2D(64, 1, use_bias=False, name="b2_expand")(x)
    h = layers.ReLU(6.0, name="b2_expand_relu")(h)
    if variant == "dw_same_s2":
        h = layers.DepthwiseConv2D(3, strides=2, padding="same", name="b2_dw")(h)
    elif variant == "dw_asym_pad":
        h = layers.ZeroPadding2D(((0, 1), (0, 1)), name="b2_pad")(h)
        h = layers.DepthwiseConv2D(3, strides=2, padding="valid", name="b2_dw")(h)
    elif variant == "dw_pad_top_left":
        h = layers.ZeroPadding2D(((1, 0), (1, 0)), name="b2_pad")(h)
        h = layers.DepthwiseConv2D(3, strides=2, padding="valid", name="b2_dw")(h)
    elif variant == "dw5x5":
        h = layers.ZeroPadding2D(2, name="b2_pad")(h)
        h = layers.DepthwiseConv2D(5, strides=2, padding="valid", name="b2_dw")(h)
    else:
        h = layers.ZeroPadding2D(1, name="b2_pad")(h)
        h = layers.DepthwiseConv2D(3, strides=2, padding="valid", name="b2_dw")(h)
    h = layers.ReLU(6.0, name="b2_dw_relu")(h)
    if variant == "rich":
        h = layers.UpSampling2D(2, interpolation="bilinear", name="b2_up")(h)
    stride = 2 if variant == "pw_stride" else 1
    x = layers.Conv2D(32, 1, strides=stride, use_bias=False, name="b2_project")(h)
    feature = x
    x = layers.Conv2D(96, 1, name="head")(x)
    x = layers.ReLU(6.0, name="head_relu")(x)
    if variant == "no_pooling":
        x = layers.Flatten(name="flatten")(x)
    else:
        x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(4, name="classifier")(x)
    if variant == "escape":
        return keras.Model(inputs, [outputs, feature], name=f"tiny_{variant}")
    return keras.Model(inputs, outputs, name=f"tiny_{variant}")


def rules_mobilenet(size: int = 64, alpha: float = 0.35, classes: int = 10, seed: int = 0) -> Any:
    """MobileNetV2's layout built to the sparse-path rules (what xnnpack-fix makes of it)."""
    keras = _keras()
    layers = keras.layers
    keras.utils.set_random_seed(seed)

    def width(c: float) -> int:
        return max(8, int(c * alpha + 4) // 8 * 8)

    inputs = keras.Input((size, size, 3), name="image")
    x = layers.ZeroPadding2D(1, name="stem_pad")(inputs)
    x = layers.Conv2D(width(32), 3, strides=2, use_bias=False, name="stem")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    channels = width(32)
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 1, 2)]
    block = 0
    for expansion, out, repeats, first_stride in settings:
        for i in range(repeats):
            stride = first_stride if i == 0 else 1
            name = f"block{block}"
            h = x
            if expansion != 1:
                h = layers.Conv2D(channels * expansion, 1, use_bias=False, name=f"{name}_expand")(h)
                h = layers.BatchNormalization(name=f"{name}_expand_bn")(h)
                h = layers.ReLU(6.0, name=f"{name}_expand_relu")(h)
            if stride == 2:
                h = layers.ZeroPadding2D(1, name=f"{name}_pad")(h)
            padding = "valid" if stride == 2 else "same"
            h = layers.DepthwiseConv2D(
                3, strides=stride, padding=padding, use_bias=False, name=f"{name}_dw"
            )(h)
            h = layers.BatchNormalization(name=f"{name}_dw_bn")(h)
            h = layers.ReLU(6.0, name=f"{name}_dw_relu")(h)
            h = layers.Conv2D(width(out), 1, use_bias=False, name=f"{name}_project")(h)
            h = layers.BatchNormalization(name=f"{name}_project_bn")(h)
            if stride == 1 and channels == width(out):
                h = layers.Add(name=f"{name}_add")([x, h])
            x, channels, block = h, width(out), block + 1
    x = layers.Conv2D(320, 1, use_bias=False, name="head")(x)
    x = layers.BatchNormalization(name="head_bn")(x)
    x = layers.ReLU(6.0, name="head_relu")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(classes, name="classifier")(x)
    return keras.Model(inputs, outputs, name="rules_mobilenet")


def prune_pointwise(model: Any, fraction: float) -> None:
    """Zero exactly `fraction` of every 1x1 Conv2D kernel, smallest magnitudes first."""
    for layer in model.layers:
        if type(layer).__name__ == "Conv2D" and tuple(layer.kernel_size) == (1, 1):
            weights = layer.get_weights()
            flat = weights[0].reshape(-1).copy()
            flat[np.argsort(np.abs(flat), kind="stable")[: round(fraction * flat.size)]] = 0.0
            weights[0] = flat.reshape(weights[0].shape)
            layer.set_weights(weights)
