"""A parsed `.tflite` model as plain Python objects (what `flatbuffer.read_model` returns).

Operators carry their builtin options as a dict, tensors their shape, dtype, quantization
and sparse storage, and the model its raw buffers; consumers such as inspection and the
XNNPACK verifier walk these without touching the flatbuffer schema.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeprune.tflite.schema import NUMPY_DTYPES


@dataclass(frozen=True)
class Quantization:
    """Affine quantization: real = scale * (q - zero_point), per tensor or per axis."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    quantized_dimension: int = 0
    min: tuple[float, ...] = ()
    max: tuple[float, ...] = ()

    @property
    def per_axis(self) -> bool:
        return len(self.scale) > 1

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"per_axis": self.per_axis}
        if self.per_axis:
            data.update(
                axis=self.quantized_dimension,
                channels=len(self.scale),
                scale_min=min(self.scale),
                scale_max=max(self.scale),
                zero_points=sorted(set(self.zero_point)),
            )
        else:
            data.update(
                scale=self.scale[0] if self.scale else None,
                zero_point=self.zero_point[0] if self.zero_point else None,
            )
        return data


@dataclass(frozen=True)
class DimensionMetadata:
    format: str  # "DENSE" | "SPARSE_CSR"
    dense_size: int
    segments: tuple[int, ...] = ()
    indices: tuple[int, ...] = ()


@dataclass(frozen=True)
class Sparsity:
    """TFLite's sparse storage of a constant tensor (what EXPERIMENTAL_SPARSITY writes)."""

    traversal_order: tuple[int, ...]
    block_map: tuple[int, ...]
    dim_metadata: tuple[DimensionMetadata, ...]


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...] | None
    dtype: str  # TensorType name, e.g. "FLOAT32", "INT8"
    buffer: int
    quantization: Quantization | None
    sparsity: Sparsity | None
    is_variable: bool = False

    @property
    def numpy_dtype(self) -> np.dtype | None:
        return NUMPY_DTYPES.get(self.dtype)

    @property
    def dense_size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1


@dataclass(frozen=True)
class Operator:
    index: int
    opcode: str  # BuiltinOperator name, or "CUSTOM"
    version: int
    inputs: tuple[int, ...]  # tensor indices; -1 marks an omitted optional input
    outputs: tuple[int, ...]
    options_type: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    custom_code: str | None = None


@dataclass(frozen=True)
class Subgraph:
    index: int
    name: str
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def producer(self, tensor_index: int) -> Operator | None:
        """The operator that writes this tensor (None for inputs and constants)."""
        return self._producers.get(tensor_index)

    def consumers(self, tensor_index: int) -> list[Operator]:
        """Operators that read this tensor, in graph order (each once)."""
        return list(self._consumers.get(tensor_index, ()))

    @functools.cached_property
    def _producers(self) -> dict[int, Operator]:
        producers: dict[int, Operator] = {}
        for op in self.operators:
            for index in op.outputs:
                producers.setdefault(index, op)
        return producers

    @functools.cached_property
    def _consumers(self) -> dict[int, list[Operator]]:
        consumers: dict[int, list[Operator]] = {}
        for op in self.operators:
            for index in dict.fromkeys(op.inputs):
                if index >= 0:
                    consumers.setdefault(index, []).append(op)
        return consumers


@dataclass(frozen=True)
class Signature:
    key: str
    subgraph: int
    inputs: dict[str, int]
    outputs: dict[str, int]


@dataclass
class TFLiteModel:
    version: int
    description: str
    subgraphs: tuple[Subgraph, ...]
    buffers: tuple[np.ndarray, ...]  # uint8 views into the file; empty when no data
    signatures: tuple[Signature, ...]
    size_bytes: int

    @property
    def main(self) -> Subgraph:
        return self.subgraphs[0]

    def op_counts(self) -> Counter[str]:
        return Counter(op.opcode for sg in self.subgraphs for op in sg.operators)

    def is_constant(self, tensor: Tensor) -> bool:
        return len(self.buffers[tensor.buffer]) > 0

    def tensor_data(self, tensor: Tensor) -> np.ndarray | None:
        """Constant values: reshaped for dense storage, flat stored values for sparse storage."""
        raw = self.buffers[tensor.buffer]
        dtype = tensor.numpy_dtype
        if len(raw) == 0 or dtype is None:
            return None
        values = raw.view(dtype)
        if tensor.sparsity is None and len(values) == tensor.dense_size:
            return values.reshape(tensor.shape)
        return values
