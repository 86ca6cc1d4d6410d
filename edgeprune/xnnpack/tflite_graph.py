"""A `.tflite` graph as the XNNPACK delegate hands it to XNNPACK, in sparse-path `Node`s.

Mirrors `tensorflow/lite/delegates/xnnpack/xnnpack_delegate.cc`: DENSIFY and DEQUANTIZE of
constant weights are unpacked before the graph is built (their outputs become constants),
CONV_2D groups and the depthwise multiplier come from the tensor shapes, and SAME/VALID
padding is passed on as a flag that XNNPACK resolves (`rules.conv_padding`). Constant PAD
ops are then folded into the conv that reads them, as `xnn_subgraph_fusion` does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from edgeprune.tflite.graph import Operator, Subgraph, Tensor, TFLiteModel
from edgeprune.xnnpack import rules
from edgeprune.xnnpack.clusters import Node
from edgeprune.xnnpack.rules import NCHW2NHWC, Padding, Verdict

FLOAT_TYPES = ("FLOAT32", "FLOAT16")
_UNPACKED = ("DENSIFY", "DEQUANTIZE")
_CONVS = ("CONV_2D", "DEPTHWISE_CONV_2D")


@dataclass
class _Pad:
    """A PAD op that XNNPACK folds into the conv reading it."""

    op: Operator
    source: int  # the tensor PAD reads
    amounts: tuple[int, int, int, int]  # top, right, bottom, left


def graph_nodes(model: TFLiteModel) -> tuple[list[Node], tuple[int, ...]]:
    """The main subgraph as sparse-path nodes, and its output tensor ids."""
    graph = model.main
    static = static_tensors(model)
    folds = _foldable_pads(model, graph, static)
    nodes = []
    for op in graph.operators:
        if op.opcode in _UNPACKED and all(i in static for i in op.inputs if i >= 0):
            continue  # unpacked at delegate prepare: not a node
        if any(f.op is op for f in folds.values()):
            continue  # folded into its conv
        nodes.append(_node(model, graph, op, static, folds.get(op.index)))
    return nodes, graph.outputs


def static_tensors(model: TFLiteModel) -> set[int]:
    """Constants, plus what DENSIFY/DEQUANTIZE make of constants (pre-unpacked weights)."""
    graph = model.main
    static = {t.index for t in graph.tensors if model.is_constant(t)}
    for op in graph.operators:
        if op.opcode in _UNPACKED and op.inputs and all(i in static for i in op.inputs if i >= 0):
            static.update(op.outputs)
    return static


def constant_source(model: TFLiteModel, tensor_index: int) -> Tensor:
    """The stored constant behind a weight input, through DENSIFY/DEQUANTIZE."""
    graph = model.main
    tensor = graph.tensors[tensor_index]
    for _ in range(4):
        producer = graph.producer(tensor.index)
        if producer is None or producer.opcode not in _UNPACKED or not producer.inputs:
            return tensor
        tensor = graph.tensors[producer.inputs[0]]
    return tensor


def count_zeros(model: TFLiteModel, tensor: Tensor) -> int:
    """Exact zeros of a constant (sparse storage aware: what is not stored is zero)."""
    values = model.tensor_data(tensor)
    if values is None:
        return 0
    return tensor.dense_size - int(np.count_nonzero(values))


def op_label(graph: Subgraph, op: Operator) -> str:
    name = layer_hint(graph.tensors[op.outputs[0]].name if op.outputs else "", op.opcode)
    return f"{op.opcode} #{op.index}" + (f" ({name})" if name else "")


def layer_hint(tensor_name: str, opcode: str) -> str:
    """The Keras layer a converted op came from, read from its output tensor's name."""
    parts = [p for p in tensor_name.split(";") if p]
    if not parts:
        return ""
    keyword = {"CONV_2D": "convolution", "DEPTHWISE_CONV_2D": "depthwise"}.get(opcode)
    chosen = parts[0]
    if keyword:
        for part in parts:
            if re.search(rf"/{keyword}\d*$", part):
                chosen = part
                break
    elements = chosen.split("/")
    name = elements[-2] if len(elements) >= 2 else elements[0]
    return re.sub(r"_\d+$", "", name) or name


def _foldable_pads(model: TFLiteModel, graph: Subgraph, static: set[int]) -> dict[int, _Pad]:
    """consumer op index -> the PAD that `xnn_subgraph_fusion` folds into it."""
    outputs = set(graph.outputs)
    folds: dict[int, _Pad] = {}
    for op in graph.operators:
        if op.opcode not in ("PAD", "PADV2") or len(op.inputs) < 2 or len(op.outputs) != 1:
            continue
        source, spec = op.inputs[0], op.inputs[1]
        result = op.outputs[0]
        if spec not in static or source in static or result in outputs:
            continue
        readers = graph.consumers(result)
        if len(readers) != 1 or readers[0].opcode not in _CONVS or readers[0].inputs[0] != result:
            continue
        amounts = model.tensor_data(graph.tensors[spec])
        if amounts is None or amounts.size != 8 or graph.tensors[result].dtype != "FLOAT32":
            continue
        pads = np.asarray(amounts).reshape(4, 2)
        if pads[0].any() or pads[3].any() or (pads < 0).any():
            continue
        if op.opcode == "PADV2" and not _zero_constant(model, graph, op.inputs[2:3], static):
            continue
        consumer = readers[0]
        if _padding(graph, consumer).tf_same:
            continue
        top, bottom = int(pads[1][0]), int(pads[1][1])
        left, right = int(pads[2][0]), int(pads[2][1])
        folds[consumer.index] = _Pad(op, source, (top, right, bottom, left))
    return folds


def _zero_constant(model: TFLiteModel, graph: Subgraph, inputs: tuple[int, ...], static) -> bool:
    if not inputs or inputs[0] not in static:
        return False
    values = model.tensor_data(graph.tensors[inputs[0]])
    return values is not None and values.size == 1 and float(values.reshape(-1)[0]) == 0.0


def _padding(graph: Subgraph, op: Operator) -> Padding:
    options = op.options
    has_weights = len(op.inputs) > 1 and op.inputs[1] >= 0
    weights = graph.tensors[op.inputs[1]].shape if has_weights else ()
    kernel = (int(weights[1]), int(weights[2])) if len(weights) == 4 else (1, 1)
    return rules.conv_padding(
        options.get("padding") == "SAME",
        kernel,
        (int(options.get("stride_h", 1)), int(options.get("stride_w", 1))),
        (int(options.get("dilation_h_factor", 1)), int(options.get("dilation_w_factor", 1))),
    )


def _node(
    model: TFLiteModel, graph: Subgraph, op: Operator, static: set[int], fold: _Pad | None
) -> Node:
    inputs = [i for i in op.inputs if i >= 0 and i not in static]
    if fold is not None:
        inputs = [fold.source if i == op.inputs[0] else i for i in inputs]
    node = Node(
        index=op.index,
        op=op.opcode,
        label=op_label(graph, op),
        inputs=tuple(dict.fromkeys(inputs)),
        outputs=tuple(op.outputs),
    )
    bad_type = _non_float(model, graph, op, static)
    if bad_type:
        node.problem = bad_type
        return node
    verdict = _verdict(model, graph, op, static, fold)
    node.flags, node.problem = verdict.flags, verdict.problem
    if op.opcode == "CONV_2D" and len(op.inputs) > 1 and op.inputs[1] >= 0:
        weights = graph.tensors[op.inputs[1]]
        if len(weights.shape) == 4 and weights.shape[1:3] == (1, 1):
            source = constant_source(model, op.inputs[1])
            node.pointwise = True
            node.params = int(weights.shape[0]) * int(weights.shape[3])
            node.zeros = count_zeros(model, source)
    return node


def _non_float(model: TFLiteModel, graph: Subgraph, op: Operator, static: set[int]) -> str | None:
    """XNNPACK's `all_values_fp`: every input and output is fp32 or fp16."""
    for index in [*op.inputs, *op.outputs]:
        if index < 0:
            continue
        tensor = graph.tensors[index]
        if index in static:
            tensor = constant_source(model, index)
            if op.opcode in _CONVS and (len(op.inputs) < 2 or index != op.inputs[1]):
                continue  # bias: float in every float model
        if tensor.dtype not in FLOAT_TYPES and not (index in static and tensor.dtype == "INT32"):
            return (
                f"computes with {tensor.dtype} tensors; XNNPACK's sparse path runs fp32/fp16 "
                "graphs only (convert with --quantize none or float16)"
            )
    return None


def _verdict(
    model: TFLiteModel, graph: Subgraph, op: Operator, static: set[int], fold: _Pad | None
) -> Verdict:
    code = op.opcode
    tensors = graph.tensors
    data = tensors[op.inputs[0]] if op.inputs and op.inputs[0] >= 0 else None
    if code in _CONVS:
        if len(op.inputs) < 2 or op.inputs[1] not in static or data is None:
            return rules.unsupported(f"{code} with non-constant weights")
        weights = tensors[op.inputs[1]].shape
        if len(weights) != 4 or len(data.shape) != 4:
            return rules.unsupported(f"{code} of unexpected rank")
        options = op.options
        kernel = (int(weights[1]), int(weights[2]))
        stride = (int(options.get("stride_h", 1)), int(options.get("stride_w", 1)))
        dilation = (
            int(options.get("dilation_h_factor", 1)),
            int(options.get("dilation_w_factor", 1)),
        )
        padding = _padding(graph, op)
        folded = None
        if fold is not None:
            padding = padding.plus(*fold.amounts)
            folded = f"PAD #{fold.op.index}"
        channels = int(data.shape[3])
        if code == "CONV_2D":
            groups = channels // int(weights[3]) if weights[3] else 1
            return rules.conv2d_verdict(
                kernel, stride, dilation, padding, groups, int(weights[3]), folded
            )
        multiplier = int(weights[3]) // channels if channels else 1
        return rules.depthwise_verdict(kernel, stride, dilation, padding, multiplier, folded)
    if code == "MEAN":
        axes = (
            model.tensor_data(tensors[op.inputs[1]])
            if len(op.inputs) > 1 and op.inputs[1] in static
            else None
        )
        rank = len(data.shape) if data is not None else 0
        return rules.mean_verdict(rank, None if axes is None else [int(a) for a in axes.ravel()])
    if code == "DEPTH_TO_SPACE":
        return Verdict(NCHW2NHWC)
    if code in ("ADD", "MUL"):
        operands = [i for i in op.inputs if i >= 0]
        ranks = [len(tensors[i].shape) for i in operands]
        shapes = [tuple(tensors[i].shape) if i in static else None for i in operands]
        return rules.binary_verdict(code, ranks, shapes)
    if code == "RESIZE_BILINEAR" and data is not None and len(data.shape) == 4:
        return rules.resize_verdict(int(data.shape[1]), int(data.shape[2]))
    if code in rules.UNARY_OPS and data is not None:
        return rules.unary_verdict(code, len(data.shape))
    if code in ("PAD", "PADV2"):
        return Verdict(
            0,
            "PAD that XNNPACK cannot fold into the conv after it (it pads more than the "
            "spatial dims, feeds several ops or a SAME stride-2 conv); pad with "
            "ZeroPadding2D right before a 'valid' conv",
        )
    return rules.unsupported(code)
