"""What is inside a model file: parameters, sparsity, sizes, ops, I/O and quantization.

`inspect_model(path)` handles `.tflite`, `.keras`/`.h5` and SavedModel directories and
returns one JSON-ready dict of file facts only. The Keras part (`inspect_keras_model`) takes
a model object, so other steps (e.g. channel pruning's before/after view) can reuse it.
XNNPACK's verdict on a model is a transform's opinion, not a file fact: the workflow
`edgeprune.workflows.inspection.inspect_model` adds it, so this format layer needs no
transform.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import numpy as np

from device_agents.integrity import sha256_file
from edgeprune import _tf
from edgeprune._tf import quiet_native_output as quiet
from edgeprune.errors import UserError
from edgeprune.keras_stats import model_stats
from edgeprune.manifest import gzip_size, read_manifest
from edgeprune.models import has_graph, load_keras_model, model_format
from edgeprune.tflite.flatbuffer import Subgraph, Tensor, TFLiteModel, read_model
from edgeprune.tflite.sources import saved_model_variables

# Ops whose input #1 is a weight tensor and input #2 a bias.
WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D")
_PASS_THROUGH = ("DENSIFY", "DEQUANTIZE")


def inspect_model(
    path: str | os.PathLike[str], custom_objects: str | None = None
) -> dict[str, Any]:
    """Inspect any supported model file or SavedModel directory (no XNNPACK section)."""
    fmt = model_format(path)
    if fmt == "tflite":
        return inspect_tflite(path)
    if fmt == "savedmodel":
        return inspect_saved_model(path)
    return inspect_keras_file(path, load_keras_model(path, custom_objects=custom_objects))


def inspect_keras_file(path: str | os.PathLike[str], keras_model: Any) -> dict[str, Any]:
    """File facts of a `.keras`/`.h5` plus its layers; takes the loaded model so callers load once."""
    return {**_file_info(Path(path), model_format(path)), **inspect_keras_model(keras_model)}


def inspect_tflite(
    path: str | os.PathLike[str], *, model: TFLiteModel | None = None
) -> dict[str, Any]:
    """Per-weight-tensor parameters and sparsity, op counts, I/O and quantization of a .tflite.

    `model` is the already parsed file, when the caller has it (the file is then not re-read).
    """
    model = read_model(path) if model is None else model
    graph = model.main
    weights = [
        tensor_stats(model, graph, t)
        for t in graph.tensors
        if model.is_constant(t) and _role(graph, t.index) in ("weights", "bias")
    ]
    kernels = [w for w in weights if w["role"] == "weights"]
    kernel_params = sum(w["params"] for w in kernels)
    kernel_zeros = sum(w["zeros"] for w in kernels)
    ops = model.op_counts()
    quantized = [
        {"index": t.index, "name": t.name, "dtype": t.dtype, **t.quantization.to_dict()}
        for t in graph.tensors
        if t.quantization is not None and not model.is_constant(t)
    ]
    return {
        **_file_info(Path(path), "tflite"),
        "schema_version": model.version,
        "subgraphs": len(model.subgraphs),
        "ops": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        "op_count": sum(ops.values()),
        "inputs": [_io(graph.tensors[i]) for i in graph.inputs],
        "outputs": [_io(graph.tensors[i]) for i in graph.outputs],
        "quantization": quantization_kind(model),
        "sparse_weights_stored": ops.get("DENSIFY", 0) > 0,
        "densify_ops": ops.get("DENSIFY", 0),
        "weights": weights,
        "totals": {
            "params": sum(w["params"] for w in weights),
            "stored_values": sum(w["stored_values"] for w in weights),
            "kernel_params": kernel_params,
            "kernel_zeros": kernel_zeros,
            "kernel_sparsity": kernel_zeros / kernel_params if kernel_params else 0.0,
            "sparse_tensors": sum(1 for w in weights if w["sparse_stored"]),
            "constant_tensors": sum(1 for t in graph.tensors if model.is_constant(t)),
        },
        "quantized_activations": quantized,
    }


def tensor_stats(model: TFLiteModel, graph: Subgraph, tensor: Tensor) -> dict[str, Any]:
    """Dense size, stored values and zeros of one constant tensor (sparse storage aware)."""
    values = model.tensor_data(tensor)
    stored = len(values) if values is not None and values.ndim == 1 else tensor.dense_size
    nonzero = int(np.count_nonzero(_real_nonzero(values, tensor))) if values is not None else stored
    zeros = tensor.dense_size - nonzero
    return {
        "index": tensor.index,
        "name": tensor.name,
        "role": _role(graph, tensor.index),
        "op": _consumer_name(graph, tensor.index),
        "shape": list(tensor.shape),
        "dtype": tensor.dtype,
        "params": tensor.dense_size,
        "stored_values": stored if tensor.sparsity is not None else tensor.dense_size,
        "zeros": zeros,
        "sparsity": zeros / tensor.dense_size if tensor.dense_size else 0.0,
        "sparse_stored": tensor.sparsity is not None,
        "bytes": len(model.buffers[tensor.buffer]),
        "quantization": tensor.quantization.to_dict() if tensor.quantization else None,
    }


def quantization_kind(model: TFLiteModel) -> str:
    """'int16x8' (16-bit activations, 8-bit weights), 'int8' (integer activations), 'dynamic'
    (int8 weights, float math), 'float16' or 'none'."""
    graph = model.main
    constant = [t for t in graph.tensors if model.is_constant(t)]
    if any(t.dtype == "INT16" and not model.is_constant(t) for t in graph.tensors):
        return "int16x8"
    if any(
        t.dtype in ("INT8", "UINT8", "INT16") and not model.is_constant(t) for t in graph.tensors
    ):
        return "int8"
    if any(t.dtype == "INT8" and t.quantization is not None for t in constant):
        return "dynamic"
    if any(t.dtype == "FLOAT16" for t in constant):
        return "float16"
    return "none"


def inspect_keras_model(model: Any) -> dict[str, Any]:
    """Per-layer params, MACs and kernel sparsity of a Keras model object."""
    stats = model_stats(model)
    return {
        "name": model.name,
        "params": stats.params,
        "macs": stats.macs,
        "kernel_sparsity": stats.kernel_sparsity,
        "inputs": [_keras_io(t) for t in model.inputs] if has_graph(model) else [],
        "outputs": [_keras_io(t) for t in model.outputs] if has_graph(model) else [],
        "layers": [layer.to_dict() for layer in stats.layers],
    }


def inspect_saved_model(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Signature I/O and per-variable sparsity of a SavedModel directory."""
    tf = _tf.tf()
    root = Path(path)
    try:
        with quiet():
            loaded = tf.saved_model.load(str(root))
    except Exception as exc:  # TF raises many types for a broken SavedModel
        raise UserError(
            f"{str(path)!r} cannot be loaded as a SavedModel: {type(exc).__name__}"
        ) from None
    variables = []
    for variable in saved_model_variables(loaded):
        values = np.asarray(variable.numpy())
        zeros = int(np.count_nonzero(values == 0))
        variables.append(
            {
                "name": variable.name,
                "shape": list(values.shape),
                "dtype": values.dtype.name,
                "params": int(values.size),
                "zeros": zeros,
                "sparsity": zeros / values.size if values.size else 0.0,
            }
        )
    signature = getattr(loaded, "signatures", {}).get("serving_default")
    inputs = outputs = []
    if signature is not None:
        inputs = [_spec_io(n, s) for n, s in signature.structured_input_signature[1].items()]
        outputs = [_spec_io(n, s) for n, s in signature.structured_outputs.items()]
    return {
        **_file_info(root, "savedmodel"),
        "inputs": inputs,
        "outputs": outputs,
        "params": sum(v["params"] for v in variables),
        "variables": variables,
    }


def _file_info(path: Path, fmt: str) -> dict[str, Any]:
    if path.is_dir():
        files = [p for p in sorted(path.rglob("*")) if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        packed = sum(len(gzip.compress(p.read_bytes(), 9, mtime=0)) for p in files)
        digest = None
    else:
        size, packed, digest = path.stat().st_size, gzip_size(path), sha256_file(path)
    try:
        manifest = read_manifest(path)
        manifest_data: dict[str, Any] | None = manifest.to_dict() if manifest else None
    except UserError as exc:  # a broken manifest must not hide the model itself
        manifest_data = {"error": str(exc)}
    return {
        "path": str(path),
        "format": fmt,
        "size_bytes": size,
        "gzip_bytes": packed,
        "sha256": digest,
        "manifest": manifest_data,
    }


def _role(graph: Subgraph, index: int, hops: int = 0) -> str:
    """'weights' or 'bias' when the tensor feeds a conv/FC there (through DENSIFY/DEQUANTIZE)."""
    for op in graph.consumers(index):
        if op.opcode in WEIGHTED_OPS:
            position = op.inputs.index(index)
            if position in (1, 2):
                return "weights" if position == 1 else "bias"
        if op.opcode in _PASS_THROUGH and hops < 3 and op.outputs:
            role = _role(graph, op.outputs[0], hops + 1)
            if role != "constant":
                return role
    return "constant"


def _consumer_name(graph: Subgraph, index: int, hops: int = 0) -> str | None:
    for op in graph.consumers(index):
        if op.opcode in _PASS_THROUGH and hops < 3 and op.outputs:
            return _consumer_name(graph, op.outputs[0], hops + 1)
        return f"{op.opcode}#{op.index}"
    return None


def _real_nonzero(values: np.ndarray, tensor: Tensor) -> np.ndarray:
    """Which stored values are non-zero in real terms (q != zero_point for quantized ones)."""
    quant = tensor.quantization
    if quant is None or not np.issubdtype(values.dtype, np.integer):
        return values != 0
    points = np.asarray(quant.zero_point)
    if len(set(quant.zero_point)) == 1:
        return values != points[0]
    if values.ndim > quant.quantized_dimension and values.shape[quant.quantized_dimension] == len(
        points
    ):
        shape = [1] * values.ndim
        shape[quant.quantized_dimension] = len(points)
        return values != points.reshape(shape)
    return values != 0


def _io(tensor: Tensor) -> dict[str, Any]:
    return {
        "name": tensor.name,
        "shape": list(tensor.shape_signature if tensor.shape_signature else tensor.shape),
        "dtype": tensor.dtype.lower(),
        "quantization": tensor.quantization.to_dict() if tensor.quantization else None,
    }


def _keras_io(tensor: Any) -> dict[str, Any]:
    return {
        "name": getattr(tensor, "name", ""),
        "shape": [None if d is None else int(d) for d in tensor.shape],
        "dtype": str(getattr(tensor, "dtype", "float32")),
    }


def _spec_io(name: str, spec: Any) -> dict[str, Any]:
    return {"name": name, "shape": spec.shape.as_list(), "dtype": spec.dtype.name}
