"""`edgeprune inspect --pattern N:M|block:RxC`: does each weight tensor satisfy the pattern?

Works on a `.tflite` (weights densified from sparse storage, real zeros of quantized
weights taken at their zero point) and on a Keras model (its prunable kernels). Every
group / block is checked with the same `violations` the pruner's masks are tested with.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeprune.prune.patterns import KernelLayout, Pattern, parse_pattern
from edgeprune.tflite.graph import TFLiteModel
from edgeprune.xnnpack.dense_values import dense_values
from edgeprune.xnnpack.tflite_graph import constant_source, op_label

# TFLite weight layouts: CONV_2D (out, kh, kw, in), FULLY_CONNECTED (out, in).
TFLITE_LAYOUTS = {
    "CONV_2D": KernelLayout(3, 0),
    "FULLY_CONNECTED": KernelLayout(1, 0),
    "DEPTHWISE_CONV_2D": KernelLayout(None, None),
}
TFLITE_RANKS = {"CONV_2D": 4, "FULLY_CONNECTED": 2, "DEPTHWISE_CONV_2D": 4}


def tflite_pattern_report(model: TFLiteModel, pattern: str | Pattern) -> dict[str, Any]:
    """Per weight tensor of every conv / fully-connected op: satisfied, violations, or why n/a."""
    parsed = parse_pattern(pattern)
    assert parsed is not None
    graph = model.main
    rows = []
    for op in graph.operators:
        layout = TFLITE_LAYOUTS.get(op.opcode)
        if layout is None or len(op.inputs) < 2 or op.inputs[1] < 0:
            continue
        source = constant_source(model, op.inputs[1])
        if not model.is_constant(source) or len(source.shape) != TFLITE_RANKS[op.opcode]:
            continue
        values = dense_values(model, source)
        nonzero = _real_nonzero(values, source.quantization)
        rows.append(_row(parsed, nonzero, layout, op_label(graph, op), source.index, source.name))
    return _summary(parsed, rows)


def keras_pattern_report(model: Any, pattern: str | Pattern) -> dict[str, Any]:
    """The same check over a Keras model's prunable kernels."""
    from edgeprune.prune.policy import prunable_kernels

    parsed = parse_pattern(pattern)
    assert parsed is not None
    rows = []
    for target in prunable_kernels(model):
        values = np.asarray(target.variable.numpy())
        label = f"layer '{target.label}' ({target.class_name})"
        rows.append(_row(parsed, values != 0, target.layout, label, None, target.weight_name))
    return _summary(parsed, rows)


def _row(
    pattern: Pattern,
    nonzero: np.ndarray,
    layout: KernelLayout,
    label: str,
    tensor: int | None,
    name: str,
) -> dict[str, Any]:
    shape = tuple(int(d) for d in nonzero.shape)
    row: dict[str, Any] = {
        "op": label,
        "tensor": tensor,
        "name": name,
        "shape": list(shape),
        "sparsity": 1.0 - float(np.count_nonzero(nonzero)) / nonzero.size if nonzero.size else 0.0,
    }
    problem = pattern.shape_problem(shape, layout)
    if problem:
        return {**row, "applies": False, "satisfied": None, "reason": problem}
    units = nonzero.size // (pattern.m if hasattr(pattern, "m") else pattern.unit_size)
    violations = pattern.violations(nonzero.astype(np.uint8), layout)
    return {
        **row,
        "applies": True,
        "units": int(units),
        "violations": int(violations),
        "satisfied": violations == 0,
        "reason": None,
    }


def _summary(pattern: Pattern, rows: list[dict[str, Any]]) -> dict[str, Any]:
    checked = [r for r in rows if r["applies"]]
    return {
        "pattern": str(pattern),
        "unit": "group" if hasattr(pattern, "m") else "block",
        "tensors": rows,
        "checked": len(checked),
        "satisfied": sum(1 for r in checked if r["satisfied"]),
        "violating": sum(1 for r in checked if not r["satisfied"]),
        "not_applicable": len(rows) - len(checked),
        "all_satisfied": bool(checked) and all(r["satisfied"] for r in checked),
    }


def _real_nonzero(values: np.ndarray, quantization: Any) -> np.ndarray:
    """True where the real value is non-zero (q != zero point for quantized weights)."""
    if quantization is None or not np.issubdtype(values.dtype, np.integer):
        return values != 0
    points = np.asarray(quantization.zero_point)
    if points.size == 1:
        return values != points.reshape(())
    axis = quantization.quantized_dimension
    if not 0 <= axis < values.ndim or values.shape[axis] != points.size:
        return values != 0  # zero points that do not fit the tensor: take 0 as zero
    shape = [1] * values.ndim
    shape[quantization.quantized_dimension] = points.size
    return values != points.reshape(shape)


def check_pattern_option(path: str, pattern: str | None) -> Pattern | None:
    """Parse `--pattern` and check it can apply to this kind of model, before any work."""
    from edgeprune.errors import UserError
    from edgeprune.models import model_format

    parsed = parse_pattern(pattern)
    if parsed is not None and model_format(path) == "savedmodel":
        raise UserError(
            "pattern checks .tflite and Keras (.keras/.h5) models; convert the SavedModel first",
            params=("pattern",),
        )
    return parsed


def pattern_section(
    path: str, pattern: Pattern, custom_objects: str | None = None
) -> dict[str, Any]:
    """The pattern report of the model file at `path`."""
    from edgeprune.models import load_keras_model, model_format
    from edgeprune.tflite.flatbuffer import read_model

    if model_format(path) == "tflite":
        return tflite_pattern_report(read_model(path), pattern)
    return keras_pattern_report(load_keras_model(path, custom_objects=custom_objects), pattern)
