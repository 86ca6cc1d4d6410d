"""Per-layer parameters, MACs and sparsity of a Keras model.

MACs (multiply-accumulates) are counted for one sample (batch 1) for the layers that do
the arithmetic that matters on a CPU: convolutions (regular, depthwise, separable,
transposed) and dense layers. Element-wise layers, pooling and normalisation are left out,
as TAO, torch-pruning and the MobileNet papers do. Nested models are walked. A layer called
more than once (a detection head shared by every FPN level) counts the MACs of each call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

PRUNABLE_KERNEL_LAYERS = ("Conv2D", "Dense", "DepthwiseConv2D", "SeparableConv2D")


@dataclass
class LayerStats:
    name: str
    class_name: str
    params: int
    macs: int
    kernel_size: int
    kernel_zeros: int
    output_shape: tuple[int | None, ...] | None

    @property
    def kernel_sparsity(self) -> float:
        return self.kernel_zeros / self.kernel_size if self.kernel_size else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kernel_sparsity"] = self.kernel_sparsity
        return data


@dataclass
class ModelStats:
    layers: list[LayerStats]

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def kernel_sparsity(self) -> float:
        """Fraction of zeros over all kernels of the prunable layer types."""
        size = sum(layer.kernel_size for layer in self.layers)
        zeros = sum(layer.kernel_zeros for layer in self.layers)
        return zeros / size if size else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "macs": self.macs,
            "kernel_sparsity": self.kernel_sparsity,
            "layers": [layer.to_dict() for layer in self.layers],
        }


def model_stats(model: Any) -> ModelStats:
    return ModelStats(list(_walk(model, prefix="")))


def _walk(model: Any, prefix: str) -> Any:
    nodes = _model_nodes(model)
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.__class__.__name__ in (
            "Functional",
            "Sequential",
            "Model",
        ):
            yield from _walk(layer, prefix=f"{prefix}{layer.name}/")
            continue
        yield _layer_stats(layer, prefix, nodes)


def _model_nodes(model: Any) -> set[int] | None:
    """id() of the call nodes of `model`'s own graph (None: no graph, e.g. subclassed)."""
    graph = getattr(model, "_functional", None) or model
    by_depth = getattr(graph, "_nodes_by_depth", None)
    if not isinstance(by_depth, dict):
        return None
    return {id(node) for nodes in by_depth.values() for node in nodes}


def _call_shapes(layer: Any, nodes: set[int] | None) -> list[tuple[Any, Any]]:
    """(input shape, output shape) of each call of `layer` in the model's graph."""
    calls = [
        node
        for node in getattr(layer, "_inbound_nodes", [])
        if nodes is not None and id(node) in nodes and node.output_tensors
    ]
    if len(calls) < 2:
        return [(None, _output_shape(layer))]
    return [
        (
            _shape(node.input_tensors[0]) if node.input_tensors else None,
            _shape(node.output_tensors[0]),
        )
        for node in calls
    ]


def _shape(tensor: Any) -> tuple[int | None, ...]:
    return tuple(None if d is None else int(d) for d in tensor.shape)


def _layer_stats(layer: Any, prefix: str, nodes: set[int] | None = None) -> LayerStats:
    class_name = layer.__class__.__name__
    kind = getattr(layer, "float_class", None) or class_name  # a QAT layer counts as its float kind
    params = int(sum(int(np.prod(w.shape)) for w in layer.weights))
    kernel_size = kernel_zeros = 0
    if kind in PRUNABLE_KERNEL_LAYERS:
        for kernel in _kernels(layer):
            values = np.asarray(kernel)
            kernel_size += values.size
            kernel_zeros += int(np.count_nonzero(values == 0))
    calls = _call_shapes(layer, nodes)
    output_shape = calls[0][1]
    return LayerStats(
        name=prefix + layer.name,
        class_name=class_name,
        params=params,
        macs=sum(_macs(layer, kind, out, inp) for inp, out in calls),
        kernel_size=kernel_size,
        kernel_zeros=kernel_zeros,
        output_shape=output_shape,
    )


def _kernels(layer: Any) -> list[Any]:
    """The weight tensors pruning acts on (both kernels of a SeparableConv2D)."""
    names = ("kernel", "depthwise_kernel", "pointwise_kernel")
    kernels = []
    for weight in layer.weights:
        base = weight.path.rsplit("/", 1)[-1] if hasattr(weight, "path") else weight.name
        if base.split(":")[0] in names:
            kernels.append(weight.numpy())
    return kernels


def _output_shape(layer: Any) -> tuple[int | None, ...] | None:
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        return None
    return tuple(None if d is None else int(d) for d in shape)


def _macs(
    layer: Any,
    class_name: str,
    output_shape: tuple[int | None, ...] | None,
    input_shape: tuple[int | None, ...] | None = None,
) -> int:
    if output_shape is None:
        return 0
    spatial = (
        int(np.prod([d for d in output_shape[1:-1] if d is not None]))
        if len(output_shape) > 2
        else 1
    )
    if class_name in ("Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose"):
        kernel = _weight_shape(layer, "kernel")
        if kernel is None:
            return 0
        if class_name == "Conv2DTranspose":
            # every input pixel scatters through the whole kernel
            in_shape = input_shape or tuple(layer.input.shape)
            in_spatial = int(np.prod([d for d in in_shape[1:-1] if d is not None]))
            return in_spatial * int(np.prod(kernel))
        return spatial * int(np.prod(kernel))  # kh*kw*(cin/groups)*cout
    if class_name == "DepthwiseConv2D":
        kernel = _weight_shape(layer, "kernel")
        return spatial * int(np.prod(kernel)) if kernel is not None else 0
    if class_name == "SeparableConv2D":
        depthwise = _weight_shape(layer, "depthwise_kernel")
        pointwise = _weight_shape(layer, "pointwise_kernel")
        if depthwise is None or pointwise is None:
            return 0
        # the depthwise part runs at the output resolution too (stride applies to it)
        return spatial * (int(np.prod(depthwise)) + int(np.prod(pointwise)))
    if class_name == "Dense":
        kernel = _weight_shape(layer, "kernel")
        if kernel is None:
            return 0
        leading = (
            int(np.prod([d for d in output_shape[1:-1] if d is not None]))
            if len(output_shape) > 2
            else 1
        )
        return leading * int(np.prod(kernel))
    return 0


def _weight_shape(layer: Any, name: str) -> tuple[int, ...] | None:
    for weight in layer.weights:
        base = weight.path.rsplit("/", 1)[-1] if hasattr(weight, "path") else weight.name
        if base.split(":")[0] == name:
            return tuple(int(d) for d in weight.shape)
    return None
