"""The Keras layers of a quantization-aware (QAT) model: TFLite's int8 arithmetic simulated
in float, with straight-through gradients.

They live in the core layer, not in `quantize/`, because every loader (`models.load_keras_model`,
so `convert`, `evaluate`, recipes) must know them to read a QAT `.keras` file; they are
registered as `edgeprune>...` Keras serializables when this module is imported, which the
loader does on demand.

Weights are per-channel symmetric int8 (range [-127, 127], scale = max|w| / 127 per output
channel), as TFLite's converter quantizes conv and dense kernels; symmetric quantization
maps 0 to 0, and a mask fixed when the model was wrapped keeps pruned zeros exactly zero.
Activations are per-tensor asymmetric int8 whose range is a moving average of each batch's
min and max (tfmot's MovingAverageQuantizer), seeded by the first batch rather than tfmot's
[-6, 6] so a short fine-tune starts from the real range. Both use TensorFlow's FakeQuant
ops, whose nudged zero point and rounding the TFLite converter reads back as the int8
tensors' scales.
"""

from __future__ import annotations

from typing import Any

from edgeprune import _tf

keras = _tf.keras()
tf = _tf.tf()
ops = keras.ops
_Layer: Any = keras.layers.Layer  # typed Any: keras is imported at run time, unseen by mypy

NUM_BITS = 8
EMA_DECAY = 0.99
"""Moving-average decay of activation ranges (tfmot: 0.999, for long runs from scratch; a
fine-tune of a few hundred steps needs the range to follow the weights faster)."""
PRE_QUANT_ACTIVATIONS = frozenset({"softmax", "sigmoid", "tanh"})
"""Activations whose int8 output range TFLite fixes (softmax: scale 1/256): the tensor before
them is quantized, not the one after (as tfmot does)."""
KERNEL_KINDS = ("Conv2D", "DepthwiseConv2D", "Dense")
_TINY = 1e-8


def quantize_weights(kernel: Any, depthwise: bool = False) -> Any:
    """`kernel` fake-quantized per output channel (its last axis; for a depthwise kernel the
    `in x multiplier` channels TFLite has), symmetric over [-127, 127], with a straight-
    through gradient.

    Written as round(w / scale) * scale rather than a FakeQuant op: the converter folds it
    into a float constant that already lies on the int8 grid, and its own per-channel
    quantization (scale = max|w| / 127) then gives exactly these values, whereas a
    FakeQuant op before a depthwise kernel's reshape trips its quantization-axis check.
    """
    axes = [0, 1] if depthwise else list(range(len(kernel.shape) - 1))
    limit = tf.stop_gradient(tf.reduce_max(tf.abs(kernel), axis=axes, keepdims=True))
    scale = tf.maximum(limit, _TINY) / 127.0
    grid = tf.clip_by_value(tf.round(kernel / scale), -127.0, 127.0) * scale
    return kernel + tf.stop_gradient(grid - kernel)


@keras.saving.register_keras_serializable(package="edgeprune")
class ActivationQuantizer(_Layer):
    """Per-tensor asymmetric int8 fake quantization with a moving-average min/max.

    In training each batch's range (widened to hold 0, as TFLite needs) moves the stored
    range by `1 - decay` (the first batch sets it); in inference the stored range is used,
    which is what the converter writes into the int8 tensor.
    """

    def __init__(self, decay: float = EMA_DECAY, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.decay = float(decay)

    def build(self, input_shape: Any) -> None:
        zeros = keras.initializers.Zeros()
        self.range_min = self.add_weight(
            name="range_min", shape=(), initializer=zeros, trainable=False
        )
        self.range_max = self.add_weight(
            name="range_max", shape=(), initializer=zeros, trainable=False
        )
        self.seen = self.add_weight(name="seen", shape=(), initializer=zeros, trainable=False)
        super().build(input_shape)

    def call(self, inputs: Any, training: Any = None) -> Any:
        if training:
            low = tf.minimum(tf.reduce_min(inputs), 0.0)
            high = tf.maximum(tf.reduce_max(inputs), 0.0)
            keep = tf.where(self.seen > 0.5, self.decay, 0.0)
            self.range_min.assign(keep * self.range_min + (1.0 - keep) * low)
            self.range_max.assign(keep * self.range_max + (1.0 - keep) * high)
            self.seen.assign(1.0)
        low = tf.minimum(self.range_min, 0.0)
        high = tf.maximum(self.range_max, low + _TINY)
        return tf.quantization.fake_quant_with_min_max_vars(
            inputs, low, high, num_bits=NUM_BITS, narrow_range=False
        )

    def calibrate(self, low: float, high: float) -> None:
        """Set the range directly (what a calibration pass measured)."""
        self.range_min.assign(min(float(low), 0.0))
        self.range_max.assign(max(float(high), 0.0))
        self.seen.assign(1.0)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "decay": self.decay}


@keras.saving.register_keras_serializable(package="edgeprune")
class QatKernel(_Layer):
    """A Conv2D, DepthwiseConv2D or Dense (`kind`) whose kernel is masked, then fake-quantized
    per channel, and whose output (after its activation) is fake-quantized per tensor.

    The float layer (rebuilt from `float_config`) is a sublayer that holds kernel and bias,
    so its own save format and its op are reused. `mask` is 1 where the kernel was non-zero
    when the model was wrapped (`preserve_sparsity`), else all ones.
    """

    def __init__(
        self,
        kind: str,
        float_config: dict[str, Any],
        preserve_sparsity: bool = True,
        quantize_output: bool = True,
        decay: float = EMA_DECAY,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if kind not in KERNEL_KINDS:
            raise ValueError(f"kind must be one of {KERNEL_KINDS}, got {kind!r}")
        self.kind = kind
        self.float_class = kind  # what keras_stats counts as a prunable kernel layer
        self.float_config = dict(float_config)
        self.preserve_sparsity = bool(preserve_sparsity)
        self.quantize_output = bool(quantize_output)
        self.decay = float(decay)
        config = {**self.float_config, "name": f"{self.name}_float"}
        self.float_layer = getattr(keras.layers, kind).from_config(config)
        activation = self.float_layer.activation
        self.activation_name = str(getattr(activation, "__name__", activation or "linear"))
        self.pre_quantize = self.activation_name in PRE_QUANT_ACTIVATIONS
        self.output_quantizer = (
            ActivationQuantizer(decay, name=f"{self.name}_out")
            if quantize_output or self.pre_quantize
            else None
        )

    def build(self, input_shape: Any) -> None:
        self.float_layer.build(input_shape)
        kernel = self.float_layer.kernel
        self.mask = self.add_weight(
            name="sparsity_mask",
            shape=tuple(kernel.shape),
            initializer=keras.initializers.Ones(),
            trainable=False,
        )
        if self.output_quantizer is not None:
            self.output_quantizer.build(self.float_layer.compute_output_shape(input_shape))
        super().build(input_shape)

    def quantized_kernel(self) -> Any:
        """The kernel TFLite will hold, in float: masked, then fake-quantized per channel."""
        kernel = self.float_layer.kernel * self.mask
        return quantize_weights(kernel, depthwise=self.kind == "DepthwiseConv2D")

    def call(self, inputs: Any, training: Any = None) -> Any:
        layer = self.float_layer
        kernel = self.quantized_kernel()
        if self.kind == "Dense":
            x = ops.matmul(inputs, kernel)
        elif self.kind == "Conv2D":
            x = layer.convolution_op(inputs, kernel)
        else:
            x = ops.depthwise_conv(
                inputs,
                kernel,
                strides=layer.strides,
                padding=layer.padding,
                dilation_rate=layer.dilation_rate,
                data_format=layer.data_format,
            )
        if layer.use_bias:
            x = ops.add(x, layer.bias)
        if self.pre_quantize and self.output_quantizer is not None:
            return layer.activation(self.output_quantizer(x, training=training))
        x = layer.activation(x)
        if self.output_quantizer is not None:
            x = self.output_quantizer(x, training=training)
        return x

    def apply_mask(self) -> None:
        """Write the mask into the kernel variable, so the saved float kernel is as sparse
        as the int8 one (Adam never moves a weight whose gradient is always zero, but a
        restored or edited model may)."""
        kernel = self.float_layer.kernel
        kernel.assign(kernel * self.mask)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return self.float_layer.compute_output_shape(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "kind": self.kind,
            "float_config": self.float_config,
            "preserve_sparsity": self.preserve_sparsity,
            "quantize_output": self.quantize_output,
            "decay": self.decay,
        }


QAT_CLASSES = (ActivationQuantizer, QatKernel)


def is_qat_model(model: Any) -> bool:
    """Whether `model` (or a model nested in it) has edgeprune's fake-quant layers."""
    for layer in getattr(model, "layers", ()):
        if isinstance(layer, QAT_CLASSES) or (hasattr(layer, "layers") and is_qat_model(layer)):
            return True
    return False
