"""Wrap a float Keras model for quantization-aware training: a new model whose every int8
tensor of the future TFLite graph passes through a fake quantizer.

Where the converter makes one int8 op, the wrapped model quantizes once, at that op's
output: Conv2D / DepthwiseConv2D / Dense become `QatKernel` layers; a BatchNormalization
that only follows one of them is folded into its kernel and bias here, as the converter
folds it (statistics frozen, so training sees exactly the kernel the .tflite will hold);
a ReLU after them is fused (quantized after the ReLU, not before). Add, Concatenate,
average pooling, other activations and an unfolded BatchNormalization get a quantizer after
them; max pooling, reshapes, padding and dropout pass ranges through (TFLite keeps the
input's scale); softmax's output range is fixed by TFLite. Any other layer is refused by
name: a float island would make the .tflite fall back or fail to convert.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgeprune import _tf
from edgeprune.errors import UserError
from edgeprune.layer_kinds import INFERENCE_IDENTITY_LAYERS

QUANTIZED_AFTER = frozenset(
    {
        "Add",
        "Subtract",
        "Multiply",
        "Concatenate",
        "AveragePooling2D",
        "GlobalAveragePooling2D",
        "ReLU",
        "LeakyReLU",
        "Activation",
        "BatchNormalization",
    }
)
"""Layers that make a new int8 tensor with its own range."""
PASS_THROUGH = frozenset(
    {
        "MaxPooling2D",
        "GlobalMaxPooling2D",
        "Flatten",
        "Reshape",
        "ZeroPadding2D",
        "UpSampling2D",
        "Cropping2D",
        "Permute",
        *INFERENCE_IDENTITY_LAYERS,
    }
)
"""Layers whose int8 output keeps the input's scale (or that vanish at inference)."""
FIXED_RANGE = frozenset({"Softmax"})
FUSED_ACTIVATIONS = frozenset({"relu", "relu6"})


@dataclass
class QatPlan:
    """What the wrap did, layer by layer (for the report and the manifest)."""

    quantized: list[str] = field(default_factory=list)  # kernel layers, fake-quantized
    folded: dict[str, str] = field(default_factory=dict)  # BatchNormalization -> its kernel
    fused: dict[str, str] = field(default_factory=dict)  # activation -> its kernel
    sparsity: dict[str, float] = field(default_factory=dict)  # kernel zeros kept, per layer

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quantize_aware(model: Any, preserve_sparsity: bool = True) -> Any:
    """A new QAT model of `model` (left untouched); see `wrap` for what changes."""
    return wrap(model, preserve_sparsity=preserve_sparsity)[0]


def wrap(model: Any, preserve_sparsity: bool = True) -> tuple[Any, QatPlan]:
    """(QAT model, plan). With `preserve_sparsity` the zero weights of every kernel are
    fixed by a mask, so they stay exactly zero through training and in the int8 kernels."""
    from edgeprune.qat_layers import KERNEL_KINDS, ActivationQuantizer, is_qat_model

    keras = _tf.keras()
    if is_qat_model(model):
        raise UserError(
            f"model {model.name!r} is already quantization-aware (it has fake-quant layers); "
            "give the float model",
            params=("model",),
        )
    graph = _functional(model, keras)
    layers = [layer for layer in graph.layers if type(layer).__name__ != "InputLayer"]
    kinds = {id(layer): type(layer).__name__ for layer in layers}
    unsupported = [
        f"{layer.name} ({kinds[id(layer)]})"
        for layer in layers
        if kinds[id(layer)] not in {*KERNEL_KINDS, *QUANTIZED_AFTER, *PASS_THROUGH, *FIXED_RANGE}
    ]
    if unsupported:
        raise UserError(
            f"QAT cannot quantize {', '.join(unsupported[:5])}"
            f"{' and more' if len(unsupported) > 5 else ''}: it wraps Conv2D, DepthwiseConv2D, "
            "Dense and the int8 layers between them; convert this model with post-training "
            "int8 instead",
            params=("model",),
        )
    if not any(kinds[id(layer)] in KERNEL_KINDS for layer in layers):
        raise UserError(
            f"model {model.name!r} has no Conv2D, DepthwiseConv2D or Dense layer to quantize",
            params=("model",),
        )
    plan = QatPlan()
    folds = _folds(layers, kinds, plan)
    fused = _fused(layers, kinds, folds, plan)
    built: dict[int, Callable[..., Any]] = {}

    def operation_fn(layer: Any) -> Callable[..., Any]:
        if id(layer) not in built:
            built[id(layer)] = _replacement(
                layer, kinds[id(layer)], folds, fused, preserve_sparsity, plan
            )
        return built[id(layer)]

    inputs = [
        keras.Input(shape=tuple(t.shape[1:]), dtype=t.dtype, name=_input_name(t, i))
        for i, t in enumerate(graph.inputs)
    ]
    quantized = [
        ActivationQuantizer(name=f"{_input_name(t, i)}_quant")(x)
        for i, (t, x) in enumerate(zip(graph.inputs, inputs, strict=True))
    ]
    outputs = graph._run_through_graph(quantized, operation_fn=operation_fn)
    single = not isinstance(graph.output, list | tuple | dict)
    qat = keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs, name=model.name)
    if single and isinstance(qat.outputs, list) and len(qat.outputs) != 1:
        raise RuntimeError("the wrapped model lost its output")
    return qat, plan


def _functional(model: Any, keras: Any) -> Any:
    if type(model).__name__ == "Sequential":
        if not model.built or not getattr(model, "inputs", None):
            raise UserError(
                f"model {model.name!r} is a Sequential model without an input shape",
                params=("model",),
            )
        return keras.Model(model.inputs, model.outputs, name=model.name)
    if not hasattr(model, "_run_through_graph"):
        raise UserError(
            f"model {model.name!r} is a subclassed model; QAT needs a functional or "
            "Sequential model (a layer graph it can rewrite)",
            params=("model",),
        )
    return model


def _input_name(tensor: Any, index: int) -> str:
    history = getattr(tensor, "_keras_history", None)
    return str(history[0].name) if history else f"input_{index}"


def _consumers(layer: Any) -> list[Any]:
    return [node.operation for node in getattr(layer, "_outbound_nodes", [])]


def _folds(layers: list[Any], kinds: dict[int, str], plan: QatPlan) -> dict[int, Any]:
    """kernel layer id -> the BatchNormalization folded into it (its only consumer)."""
    folds: dict[int, Any] = {}
    for layer in layers:
        consumers = _consumers(layer)
        if kinds[id(layer)] not in ("Conv2D", "DepthwiseConv2D", "Dense") or len(consumers) != 1:
            continue
        bn = consumers[0]
        if (
            type(bn).__name__ == "BatchNormalization"
            and _activation(layer) == "linear"
            and int(bn.axis if isinstance(bn.axis, int) else bn.axis[0]) in (-1, 3, 1)
            and _channels_last(bn, layer)
            and len(bn._inbound_nodes) == 1
        ):
            folds[id(layer)] = bn
            plan.folded[bn.name] = layer.name
    return folds


def _channels_last(bn: Any, layer: Any) -> bool:
    axis = bn.axis if isinstance(bn.axis, int) else bn.axis[0]
    rank = len(layer.output.shape)
    return axis in (-1, rank - 1)


def _fused(
    layers: list[Any], kinds: dict[int, str], folds: dict[int, Any], plan: QatPlan
) -> set[int]:
    """ids of kernel layers and folded BNs whose output goes straight into a ReLU the
    converter fuses (so they are not quantized; the ReLU is)."""
    fused: set[int] = set()
    folded_bns = {id(bn): kernel for kernel, bn in folds.items()}
    owners = {id(layer): layer for layer in layers}
    for layer in layers:
        kernel_like = kinds[id(layer)] in ("Conv2D", "DepthwiseConv2D", "Dense")
        if not (kernel_like and id(layer) not in folds) and id(layer) not in folded_bns:
            continue
        if kernel_like and _activation(layer) != "linear":
            continue
        consumers = _consumers(layer)
        if len(consumers) == 1 and _fusable(consumers[0]):
            fused.add(id(layer))
            kernel = owners.get(folded_bns.get(id(layer), id(layer)), layer)
            plan.fused[consumers[0].name] = kernel.name
    return fused


def _fusable(layer: Any) -> bool:
    name = type(layer).__name__
    if name == "Activation":
        return _activation(layer) in FUSED_ACTIVATIONS
    if name == "ReLU":
        config = layer.get_config()
        return (
            float(config.get("negative_slope") or 0.0) == 0.0
            and float(config.get("threshold") or 0.0) == 0.0
            and config.get("max_value") in (None, 6.0, 6)
        )
    return False


def _activation(layer: Any) -> str:
    activation = getattr(layer, "activation", None)
    return str(getattr(activation, "__name__", activation or "linear"))


def _replacement(
    layer: Any,
    kind: str,
    folds: dict[int, Any],
    fused: set[int],
    preserve_sparsity: bool,
    plan: QatPlan,
) -> Callable[..., Any]:
    from edgeprune.qat_layers import KERNEL_KINDS, ActivationQuantizer

    if kind in KERNEL_KINDS:
        return _kernel_layer(
            layer, kind, folds.get(id(layer)), id(layer) not in fused, preserve_sparsity, plan
        )
    if kind == "BatchNormalization" and layer.name in plan.folded:
        if id(layer) in fused:
            return _identity
        quantizer = ActivationQuantizer(name=f"{layer.name}_quant")
        return lambda x, *args, **kwargs: quantizer(x)
    clone = _clone(layer)
    if kind in QUANTIZED_AFTER and not (kind == "Activation" and _activation(layer) == "softmax"):
        quantizer = ActivationQuantizer(name=f"{layer.name}_quant")
        return lambda *args, **kwargs: quantizer(clone(*args, **kwargs))
    return clone


def _identity(x: Any, *args: Any, **kwargs: Any) -> Any:
    return x


def _clone(layer: Any) -> Callable[..., Any]:
    """A copy of a non-kernel layer with the same weights (the input model stays untouched)."""
    copy = type(layer).from_config(layer.get_config())
    weights = layer.get_weights()

    def call(*args: Any, **kwargs: Any) -> Any:
        out = copy(*args, **kwargs)
        if weights:
            copy.set_weights(weights)
        return out

    return call


def _kernel_layer(
    layer: Any, kind: str, bn: Any, quantize_output: bool, preserve_sparsity: bool, plan: QatPlan
) -> Callable[..., Any]:
    from edgeprune.qat_layers import QatKernel

    kernel = np.asarray(layer.kernel.numpy(), dtype=np.float32)
    bias = (
        np.asarray(layer.bias.numpy(), dtype=np.float32)
        if getattr(layer, "use_bias", False) and layer.bias is not None
        else np.zeros(
            kernel.shape[-2] * kernel.shape[-1] if kind == "DepthwiseConv2D" else kernel.shape[-1],
            np.float32,
        )
    )
    config = layer.get_config()
    if bn is not None:
        kernel, bias = _fold(kernel, bias, bn, kind)
        config["use_bias"] = True
    mask = (kernel != 0).astype(np.float32) if preserve_sparsity else np.ones_like(kernel)
    qat = QatKernel(
        kind,
        config,
        preserve_sparsity=preserve_sparsity,
        quantize_output=quantize_output,
        name=layer.name,
    )
    plan.quantized.append(layer.name)
    plan.sparsity[layer.name] = float(np.mean(kernel == 0))

    def call(x: Any, *args: Any, **kwargs: Any) -> Any:
        out = qat(x)
        qat.float_layer.kernel.assign(kernel)
        if qat.float_layer.use_bias:
            qat.float_layer.bias.assign(bias.reshape(tuple(qat.float_layer.bias.shape)))
        qat.mask.assign(mask)
        return out

    return call


def _fold(
    kernel: np.ndarray, bias: np.ndarray, bn: Any, kind: str
) -> tuple[np.ndarray, np.ndarray]:
    """Kernel and bias with `bn` folded in: w * gamma / sqrt(var + eps), (b - mean) * that + beta."""
    mean = np.asarray(bn.moving_mean.numpy(), np.float64)
    var = np.asarray(bn.moving_variance.numpy(), np.float64)
    gamma = np.asarray(bn.gamma.numpy(), np.float64) if bn.scale else np.ones_like(mean)
    beta = np.asarray(bn.beta.numpy(), np.float64) if bn.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + float(bn.epsilon))
    if kind == "DepthwiseConv2D":
        folded = kernel * scale.reshape(kernel.shape[-2], kernel.shape[-1])
    else:
        folded = kernel * scale
    new_bias = (bias.reshape(-1).astype(np.float64) - mean) * scale + beta
    return folded.astype(np.float32), new_bias.astype(np.float32)
