"""The int8 kernels of a converted `.tflite`, read from the file: how many of their values
are zero (what sparsity-preserving QAT promises) and whether every kernel is int8."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from edgeprune.tflite.flatbuffer import read_model

KERNEL_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def int8_kernel_zeros(path: str | os.PathLike[str]) -> dict[str, Any]:
    """{"layers": {weight tensor: {"zeros", "size", "dtype"}}, "zeros", "size", "all_int8"}
    over the weight input of every conv, depthwise conv and fully connected op."""
    model = read_model(path)
    graph = model.main
    layers: dict[str, dict[str, Any]] = {}
    for op in graph.operators:
        if op.opcode not in KERNEL_OPS or len(op.inputs) < 2 or op.inputs[1] < 0:
            continue
        tensor = graph.tensors[op.inputs[1]]
        values = model.tensor_data(tensor)
        if values is None:
            continue
        layers[tensor.name] = {
            "dtype": tensor.dtype,
            "size": int(values.size),
            "zeros": int(np.count_nonzero(values == 0)),
        }
    size = sum(entry["size"] for entry in layers.values())
    zeros = sum(entry["zeros"] for entry in layers.values())
    return {
        "layers": layers,
        "size": size,
        "zeros": zeros,
        "zero_fraction": zeros / size if size else 0.0,
        "all_int8": bool(layers) and all(e["dtype"] == "INT8" for e in layers.values()),
    }
