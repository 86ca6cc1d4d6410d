"""A Keras model, before any training, as the sparse-path `Node`s its `.tflite` will have.

The pruning policy needs the verdict before it zeroes a weight, and a conversion costs
seconds to minutes, so this module predicts what the converter emits from the layers:
BatchNormalization right after a conv is folded into it (anywhere else it becomes MUL/ADD
with 1-D constants), Dropout disappears, ZeroPadding2D becomes a PAD that XNNPACK folds
into the conv after it, SeparableConv2D becomes a depthwise conv plus a 1x1 conv, and an
activation becomes a fused clamp or an element-wise op. Layers it does not know become
ops that cannot run in a cluster, so the prediction errs on the side of "not eligible";
`edgeprune inspect` on the converted model has the final word.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeprune import _tf
from edgeprune.layer_kinds import INFERENCE_IDENTITY_LAYERS
from edgeprune.xnnpack import rules
from edgeprune.xnnpack.clusters import Node
from edgeprune.xnnpack.rules import NCHW, Verdict

# activation name -> the TFLite op it becomes (None: fused into the op before, or nothing)
_ACTIVATIONS: dict[str, str | None] = {
    "linear": None,
    "relu": None,
    "relu6": None,
    "sigmoid": "LOGISTIC",
    "tanh": "TANH",
    "swish": "LOGISTIC",  # x * sigmoid(x): LOGISTIC + MUL of two 4-D tensors
    "silu": "LOGISTIC",
    "hard_swish": "HARD_SWISH",
    "hard_silu": "HARD_SWISH",
    "elu": "ELU",
    "leaky_relu": "LEAKY_RELU",
    "gelu": "GELU",
    "exponential": "EXP",
}
_TRANSPARENT = set(INFERENCE_IDENTITY_LAYERS)
_FOLDS_BATCHNORM = {"Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense"}
_OTHER_OPS = {
    "Dense": "FULLY_CONNECTED",
    "Flatten": "RESHAPE",
    "Reshape": "RESHAPE",
    "Concatenate": "CONCATENATION",
    "MaxPooling2D": "MAX_POOL_2D",
    "AveragePooling2D": "AVERAGE_POOL_2D",
    "GlobalMaxPooling2D": "REDUCE_MAX",
    "Subtract": "SUB",
    "PReLU": "PRELU",
    "Softmax": "SOFTMAX",
}


@dataclass
class KerasGraph:
    """Nodes in graph order plus the values they pass (ids of Keras tensors)."""

    nodes: list[Node] = field(default_factory=list)
    outputs: tuple[int, ...] = ()
    values: dict[int, int] = field(default_factory=dict)  # id(KerasTensor) -> value id
    alias: dict[int, int] = field(default_factory=dict)  # value id -> the value it stands for
    # PAD output value -> (its node, the value it pads, top/right/bottom/left, its readers)
    pads: dict[int, tuple[Node, int, tuple[int, int, int, int], int]] = field(default_factory=dict)
    kinds: dict[int, tuple[str, Any]] = field(default_factory=dict)  # value -> producing layer
    raw_readers: dict[int, int] = field(default_factory=dict)  # id(KerasTensor) -> readers
    folded: set[int] = field(default_factory=set)  # id() of PAD nodes folded into a conv
    private: int = 0  # counter for values inside one layer (conv -> its activation)

    def fresh(self) -> int:
        """A value id no Keras tensor has (negative)."""
        self.private -= 1
        return self.private

    def value(self, tensor: Any) -> int:
        key = self.values.setdefault(id(tensor), len(self.values))
        while key in self.alias:
            key = self.alias[key]
        return key


def keras_nodes(model: Any) -> KerasGraph:
    """The model as sparse-path nodes (nested models are walked inline)."""
    graph = KerasGraph()
    operations = list(_operations(model, graph))
    for tensor in [t for _, inputs, _, _ in operations for t in inputs] + list(model.outputs):
        graph.raw_readers[id(tensor)] = graph.raw_readers.get(id(tensor), 0) + 1
    for operation, inputs, outputs, arguments in operations:
        _add(graph, operation, inputs, outputs, arguments)
    graph.outputs = tuple(graph.value(t) for t in model.outputs)
    graph.nodes = [n for n in graph.nodes if id(n) not in graph.folded]
    for index, node in enumerate(graph.nodes):
        node.index = index
    return graph


def _functional(model: Any) -> Any:
    return getattr(model, "_functional", None) or model


def _operations(model: Any, graph: KerasGraph) -> Iterator[tuple[Any, list, list, Any]]:
    """(operation, input tensors, output tensors, arguments) in graph order, inline nested."""
    functional = _functional(model)
    depths = getattr(functional, "_nodes_by_depth", None)
    if depths is None:
        raise TypeError(f"{type(model).__name__} is not a functional or sequential model")
    for depth in sorted(depths, reverse=True):
        for node in depths[depth]:
            operation = node.operation
            inputs = list(node.input_tensors)
            outputs = list(node.output_tensors)
            if type(operation).__name__ == "InputLayer":
                continue
            if hasattr(operation, "_nodes_by_depth") or hasattr(operation, "_functional"):
                inner = _functional(operation)
                for outer, tensor in zip(inputs, inner.inputs, strict=False):
                    graph.alias[_raw(graph, tensor)] = graph.value(outer)
                yield from _operations(operation, graph)
                for outer, tensor in zip(outputs, inner.outputs, strict=False):
                    graph.alias[_raw(graph, outer)] = graph.value(tensor)
                continue
            yield operation, inputs, outputs, node.arguments


def _raw(graph: KerasGraph, tensor: Any) -> int:
    return graph.values.setdefault(id(tensor), len(graph.values))


def class_name(operation: Any) -> str:
    """The Keras class a layer is (or derives from), e.g. a custom Conv2D subclass."""
    for klass in type(operation).__mro__:
        if klass.__module__.startswith("keras"):
            return klass.__name__
    return type(operation).__name__


def _add(graph: KerasGraph, layer: Any, inputs: list, outputs: list, arguments: Any) -> None:
    kind = class_name(layer)
    is_layer = isinstance(layer, _tf.keras().layers.Layer)
    label = f"{'layer' if is_layer else 'op'} '{layer.name}' ({type(layer).__name__})"
    ins = [graph.value(t) for t in inputs]
    outs = [graph.value(t) for t in outputs]
    for value in outs:
        graph.kinds[value] = (kind, layer)

    def node(op: str, verdict: Verdict, node_in: list[int], node_out: list[int]) -> Node:
        item = Node(len(graph.nodes), op, label, tuple(node_in), tuple(node_out), layer=layer)
        item.flags, item.problem = verdict.flags, verdict.problem
        graph.nodes.append(item)
        return item

    if kind in _TRANSPARENT or (kind == "Activation" and _activation(layer) == "linear"):
        _alias(graph, outs, ins)
        return
    if kind == "BatchNormalization" and _folds(graph, ins, inputs[0]):
        _alias(graph, outs, ins)
        return
    if kind == "BatchNormalization":
        node(
            "MUL",
            Verdict(
                0,
                "a BatchNormalization that does not follow a conv becomes MUL/ADD with 1-D "
                "constants, which break a sparse cluster; put it right after a conv",
            ),
            ins,
            outs,
        )
        return
    if kind == "ZeroPadding2D":
        (top, bottom), (left, right) = (tuple(p) for p in layer.padding)
        pad = node("PAD", rules.unsupported("PAD"), ins, outs)
        pad.problem = (
            "a ZeroPadding2D that is not the only input of a 'valid' conv stays a PAD op, "
            "which cannot run in a sparse cluster"
        )
        amounts = (int(top), int(right), int(bottom), int(left))
        graph.pads[outs[0]] = (pad, ins[0], amounts, graph.raw_readers.get(id(outputs[0]), 0))
        return
    if kind in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
        _conv(graph, layer, kind, ins, outs, int(inputs[0].shape[-1]), node)
        return
    if kind in ("Activation", "ReLU", "LeakyReLU", "ELU"):
        op, verdict = _activation_op(layer, kind, inputs[0])
        node(op, verdict, ins, outs)
        return
    if kind in ("Add", "Multiply"):
        op = "ADD" if kind == "Add" else "MUL"
        operands = inputs if is_layer or arguments is None else list(arguments.args)
        node(op, _binary(op, operands), ins, outs)
        return
    if kind == "GlobalAveragePooling2D":
        channels_last = getattr(layer, "data_format", "channels_last") == "channels_last"
        verdict = rules.mean_verdict(len(inputs[0].shape), [1, 2] if channels_last else [2, 3])
        node("MEAN", verdict, ins, outs)
        return
    if kind in ("UpSampling2D", "Resizing"):
        if getattr(layer, "interpolation", "nearest") == "bilinear":
            shape = inputs[0].shape
            node("RESIZE_BILINEAR", rules.resize_verdict(shape[1] or 2, shape[2] or 2), ins, outs)
        else:
            node("RESIZE_NEAREST_NEIGHBOR", rules.unsupported("RESIZE_NEAREST_NEIGHBOR"), ins, outs)
        return
    op = _OTHER_OPS.get(kind, f"a {kind} layer")
    node(op, rules.unsupported(op), ins, outs)


def _alias(graph: KerasGraph, outs: list[int], ins: list[int]) -> None:
    for out, source in zip(outs, ins, strict=False):
        graph.alias[out] = source


def _folds(graph: KerasGraph, ins: list[int], tensor: Any) -> bool:
    """BatchNormalization folds into a conv/dense with no activation that only it reads."""
    kind, layer = graph.kinds.get(ins[0], ("", None))
    return (
        kind in _FOLDS_BATCHNORM
        and _activation(layer) == "linear"
        and graph.raw_readers.get(id(tensor), 0) == 1
    )


def _activation(layer: Any) -> str:
    activation = getattr(layer, "activation", None)
    if activation is None:
        return "linear"
    return getattr(activation, "__name__", str(activation))


def _activation_op(layer: Any, kind: str, tensor: Any) -> tuple[str, Verdict]:
    rank = len(tensor.shape)
    if kind == "ReLU":
        max_value = layer.max_value
        slope = float(getattr(layer, "negative_slope", 0.0) or 0.0)
        threshold = float(getattr(layer, "threshold", 0.0) or 0.0)
        if threshold == 0.0 and slope == 0.0 and max_value in (None, 6.0, 1.0):
            op = {None: "RELU", 6.0: "RELU6", 1.0: "RELU_0_TO_1"}[
                None if max_value is None else float(max_value)
            ]
            return op, rules.unary_verdict(op, rank)
        if threshold == 0.0 and max_value is None:
            return "LEAKY_RELU", rules.unary_verdict("LEAKY_RELU", rank)
        return "MINIMUM", rules.unsupported(f"ReLU(max_value={max_value}, threshold={threshold})")
    if kind in ("LeakyReLU", "ELU"):
        op = "LEAKY_RELU" if kind == "LeakyReLU" else "ELU"
        return op, rules.unary_verdict(op, rank)
    name = _activation(layer)
    if name not in _ACTIVATIONS:
        return name.upper(), Verdict(
            0,
            f"activation '{name}' becomes ops a sparse cluster cannot hold (e.g. scalar "
            "constants); use relu, relu6, hard_swish, swish, sigmoid or tanh",
        )
    op = _ACTIVATIONS[name] or "RELU"
    return op, rules.unary_verdict(op, rank)


def _binary(op: str, operands: list) -> Verdict:
    ranks: list[int] = []
    shapes: list[tuple[int, ...] | None] = []
    for operand in operands:
        if hasattr(operand, "shape") and not isinstance(operand, np.ndarray | float | int):
            ranks.append(len(operand.shape))
            shapes.append(None)
        else:
            constant = np.asarray(operand)
            ranks.append(constant.ndim)
            shapes.append(tuple(constant.shape))
    return rules.binary_verdict(op, ranks, shapes)


def _pair(values: Any) -> tuple[int, int]:
    """A 2-D conv's (height, width) setting as ints (Keras keeps them as tuples or lists)."""
    height, width = (int(v) for v in values)
    return height, width


def _conv(
    graph: KerasGraph, layer: Any, kind: str, ins: list[int], outs: list[int], channels: int, node
) -> None:
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        node("CONV_2D", rules.unsupported("a channels_first conv"), ins, outs)
        return
    kernel, stride = _pair(layer.kernel_size), _pair(layer.strides)
    dilation = _pair(layer.dilation_rate)
    padding = rules.conv_padding(layer.padding == "same", kernel, stride, dilation)
    source, folded = ins[0], None
    pad = graph.pads.get(source)
    if pad is not None and pad[3] == 1 and rules.can_fold_pad(padding):
        pad_node, source, amounts, _ = pad
        graph.folded.add(id(pad_node))  # removed from the graph at the end
        padding = padding.plus(*amounts)
        folded = f"ZeroPadding2D '{pad_node.layer.name}'"
    activation = _activation(layer)
    middle = outs
    if activation not in ("linear", "relu", "relu6"):
        middle = [graph.fresh()]  # a value private to this layer's two ops
    if kind == "Conv2D":
        groups = int(getattr(layer, "groups", 1))
        verdict = rules.conv2d_verdict(
            kernel, stride, dilation, padding, groups, channels // groups, folded
        )
        conv = node("CONV_2D", verdict, [source], middle)
        if kernel == (1, 1):
            _pointwise(conv, layer, "kernel")
    else:
        multiplier = int(getattr(layer, "depth_multiplier", 1))
        verdict = rules.depthwise_verdict(kernel, stride, dilation, padding, multiplier, folded)
        if kind == "DepthwiseConv2D":
            node("DEPTHWISE_CONV_2D", verdict, [source], middle)
        else:
            inner = [graph.fresh()]
            node("DEPTHWISE_CONV_2D", verdict, [source], inner)
            pointwise = node("CONV_2D", Verdict(NCHW), inner, middle)
            _pointwise(pointwise, layer, "pointwise_kernel")
    if middle is not outs:
        op, verdict = _activation_op(layer, "Activation", _Shape(4))
        node(op, verdict, middle, outs)


class _Shape:
    def __init__(self, rank: int) -> None:
        self.shape = (None,) * rank


def _pointwise(node: Node, layer: Any, weight_name: str) -> None:
    from edgeprune.prune.policy import kernel_variable

    variable = kernel_variable(layer, weight_name)
    if variable is None:
        return
    values = np.asarray(variable.numpy())
    node.pointwise = True
    node.weight_name = weight_name
    node.params = int(values.size)
    node.zeros = int(values.size - np.count_nonzero(values))
