"""Small real Keras models that exercise every channel rule, plus helpers to zero filters."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeprune import _tf

TOY_SHAPE = (16, 16, 3)


def build_toy_model(seed: int = 0) -> Any:
    """Conv, depthwise (x2), residual Add, squeeze-excite with `x + 3.0` ops, separable conv,
    PReLU, Concatenate, pooling, Flatten, hidden Dense and a logits output; BN stats random."""
    keras = _tf.keras()
    layers = keras.layers
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(TOY_SHAPE, name="image")
    x = layers.Conv2D(16, 3, padding="same", name="stem")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    d = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)
    d = layers.BatchNormalization(name="dw_bn")(d)
    d = layers.Activation("swish", name="dw_act")(d)
    a = layers.Conv2D(24, 1, name="res_a")(d)
    a = layers.BatchNormalization(name="res_a_bn")(a)
    b = layers.Conv2D(24, 1, name="res_b")(x)
    b = layers.BatchNormalization(name="res_b_bn")(b)
    r = layers.Add(name="res_add")([a, b])
    r = layers.ReLU(name="res_relu")(r)
    s = layers.GlobalAveragePooling2D(name="se_pool")(r)
    s = layers.Reshape((1, 1, 24), name="se_reshape")(s)
    s = layers.Conv2D(8, 1, activation="relu", name="se_reduce")(s)
    s = layers.Conv2D(24, 1, name="se_expand")(s)
    s = layers.ReLU(6.0, name="se_relu6")(s + 3.0) * (1.0 / 6.0)  # hard sigmoid, as MobileNetV3
    r = layers.Multiply(name="se_mul")([r, s])
    p = layers.SeparableConv2D(20, 3, padding="same", name="sep")(r)
    p = layers.PReLU(shared_axes=[1, 2], name="sep_prelu")(p)
    c1 = layers.Conv2D(12, 1, name="cat_a")(p)
    c2 = layers.Conv2D(12, 3, padding="same", name="cat_b")(r)
    c = layers.Concatenate(name="cat")([c1, c2])
    c = layers.BatchNormalization(name="cat_bn")(c)
    c = layers.ReLU(name="cat_relu")(c)
    c = layers.MaxPooling2D(2, name="pool")(c)
    f = layers.Conv2D(16, 3, strides=2, padding="same", name="head_conv")(c)
    f = layers.Flatten(name="flatten")(f)
    h = layers.Dense(32, activation="relu", name="hidden")(f)
    h = layers.Dropout(0.1, name="drop")(h)
    outputs = layers.Dense(5, name="logits")(h)
    model = keras.Model(inputs, outputs, name="toy")
    randomize_batchnorm(model, seed)
    return model


def randomize_batchnorm(model: Any, seed: int = 0) -> None:
    """Non-trivial BN statistics, so an identity rebuild is not trivially exact."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape).astype(np.float32),
                    rng.normal(0, 0.2, beta.shape).astype(np.float32),
                    rng.normal(0, 0.2, mean.shape).astype(np.float32),
                    rng.uniform(0.5, 2.0, var.shape).astype(np.float32),
                ]
            )


def zero_channels(model: Any, plan: dict[str, list[int]]) -> None:
    """Zero output channels: a conv/dense filter (kernel slice and bias), a depthwise channel,
    or a BN channel (beta and moving mean, so 0 in gives exactly 0 out)."""
    for name, channels in plan.items():
        layer = model.get_layer(name)
        weights = {w.name: np.array(w.numpy()) for w in layer.weights}
        kind = type(layer).__name__
        if kind == "BatchNormalization":
            weights["beta"][channels] = 0.0
            weights["moving_mean"][channels] = 0.0
        elif kind == "DepthwiseConv2D":  # channels index the input; outputs c*m .. c*m+m-1
            multiplier = weights["kernel"].shape[-1]
            weights["kernel"][..., channels, :] = 0.0
            outputs = [c * multiplier + k for c in channels for k in range(multiplier)]
            weights["bias"][outputs] = 0.0
        elif kind == "SeparableConv2D":
            weights["pointwise_kernel"][..., channels] = 0.0
            weights["bias"][channels] = 0.0
        else:
            weights["kernel"][..., channels] = 0.0
            weights["bias"][channels] = 0.0
        layer.set_weights([weights[w.name] for w in layer.weights])


def sample_inputs(shape: tuple[int, ...], count: int = 4, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (count, *shape)).astype(np.float32)


def max_abs_diff(a: Any, b: Any, x: np.ndarray) -> float:
    return float(
        np.max(np.abs(np.asarray(a(x, training=False)) - np.asarray(b(x, training=False))))
    )


def to_tflite(model: Any, *, frozen: bool = True) -> bytes:
    """fp32 .tflite bytes of a Keras model, converted quietly.

    `frozen=True` traces one batch-1 call, folds the variables into constants and converts
    that graph: the same flatbuffer as `TFLiteConverter.from_keras_model` (which is what
    `frozen=False` uses) at a quarter of the CPU time, because it skips the SavedModel
    export. Test budget, not product code.
    """
    tf = _tf.tf()
    with _tf.quiet_native_output():
        if not frozen:
            return tf.lite.TFLiteConverter.from_keras_model(model).convert()
        from tensorflow.python.framework.convert_to_constants import (
            convert_variables_to_constants_v2,
        )

        spec = tf.TensorSpec((1, *model.inputs[0].shape[1:]), model.inputs[0].dtype)
        call = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        graph = convert_variables_to_constants_v2(call.get_concrete_function())
        return tf.lite.TFLiteConverter.from_concrete_functions([graph]).convert()


def run_tflite(content: bytes, x: np.ndarray) -> np.ndarray:
    """Run a .tflite with ai_edge_litert (XNNPACK, 1 thread), one sample at a time."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content, num_threads=1)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]
    outputs = []
    for sample in x:
        interpreter.set_tensor(source["index"], sample[np.newaxis].astype(np.float32))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(target["index"])[0].copy())
    return np.stack(outputs)
