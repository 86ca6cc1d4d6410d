"""Read a `.tflite` flatbuffer into plain, validated Python objects (`graph.TFLiteModel`).

`read_model` gives operators (with their builtin options as a dict), tensors (shape,
dtype, quantization, sparsity), buffers and each subgraph's inputs and outputs. It is the
one place that touches the schema, so inspection and the XNNPACK verifier share it.

The bytes may be anything (a user's broken file, a fuzzer's mutation). Whatever goes
wrong while parsing becomes one `NotAModelError`; the work is bounded by the file size (a
budget of elements, each of which needs at least one byte of a real model), and every
index (tensor, buffer, opcode) is checked, so a model that parses is safe to walk.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.errors import NotAModelError
from edgeprune.tflite.graph import (
    DimensionMetadata,
    Operator,
    Quantization,
    Signature,
    Sparsity,
    Subgraph,
    Tensor,
    TFLiteModel,
)
from edgeprune.tflite.schema import TFLITE_IDENTIFIER, enum_name, schema_module

_OPTION_ENUMS = {"padding": "Padding", "fused_activation_function": "ActivationFunctionType"}


__all__ = [
    "DimensionMetadata",
    "Operator",
    "Quantization",
    "Signature",
    "Sparsity",
    "Subgraph",
    "TFLiteModel",
    "Tensor",
    "read_model",
]


class _Corrupt(Exception):
    """Internal: the bytes contradict themselves; becomes NotAModelError."""


def read_model(source: str | os.PathLike[str] | bytes, name: str | None = None) -> TFLiteModel:
    """Parse a .tflite file (or its bytes); any damage raises NotAModelError with one line."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = name or "model"
    else:
        path = Path(source)
        label = name or str(source)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise NotAModelError(f"{label!r} cannot be read: {exc.strerror}") from None
    if len(data) < 16 or data[4:8] != TFLITE_IDENTIFIER:
        raise NotAModelError(f"{label!r} is not a .tflite model (no TFL3 identifier)")
    try:
        return _Reader(data).model()
    except _Corrupt as exc:
        raise NotAModelError(f"{label!r} is a damaged .tflite model ({exc})") from None
    except Exception as exc:  # flatbuffers raises whatever struct/numpy/indexing raise
        raise NotAModelError(
            f"{label!r} is a damaged .tflite model ({type(exc).__name__} while parsing)"
        ) from None


class _Reader:
    """One parse of one buffer; `budget` caps the elements read at O(file size)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.array = np.frombuffer(data, dtype=np.uint8)
        self.schema = schema_module()
        self.budget = 2 * len(data) + 4096
        self.buffers: tuple[np.ndarray, ...] = ()
        (root,) = struct.unpack_from("<I", data, 0)
        if root < 8 or root + 4 > len(data):
            raise _Corrupt("root offset outside the file")

    def take(self, count: int) -> int:
        if count < 0:
            raise _Corrupt("negative length")
        self.budget -= count + 1
        if self.budget < 0:
            raise _Corrupt("more structure than the file can hold")
        return count

    def ints(self, obj: Any, field_name: str) -> tuple[int, ...]:
        if getattr(obj, f"{field_name}IsNone")():
            return ()
        self.take(getattr(obj, f"{field_name}Length")())
        return tuple(int(v) for v in getattr(obj, f"{field_name}AsNumpy")())

    def floats(self, obj: Any, field_name: str) -> tuple[float, ...]:
        if getattr(obj, f"{field_name}IsNone")():
            return ()
        self.take(getattr(obj, f"{field_name}Length")())
        return tuple(float(v) for v in getattr(obj, f"{field_name}AsNumpy")())

    def text(self, raw: bytes | None) -> str:
        if not raw:
            return ""
        self.take(len(raw))
        return bytes(raw).decode("utf-8", "replace")

    def model(self) -> TFLiteModel:
        s = self.schema
        model = s.Model.GetRootAs(self.data, 0)
        codes = [
            self._opcode(model.OperatorCodes(i))
            for i in range(self.take(model.OperatorCodesLength()))
        ]
        buffers = tuple(
            self._buffer(model.Buffers(i)) for i in range(self.take(model.BuffersLength()))
        )
        self.buffers = buffers
        if not buffers:
            raise _Corrupt("no buffers")
        n_subgraphs = self.take(model.SubgraphsLength())
        if n_subgraphs == 0:
            raise _Corrupt("no subgraphs")
        subgraphs = tuple(self._subgraph(i, model.Subgraphs(i), codes) for i in range(n_subgraphs))
        signatures = tuple(
            self._signature(model.SignatureDefs(i), subgraphs)
            for i in range(self.take(model.SignatureDefsLength()))
        )
        return TFLiteModel(
            version=int(model.Version()),
            description=self.text(model.Description()),
            subgraphs=subgraphs,
            buffers=buffers,
            signatures=signatures,
            size_bytes=len(self.data),
        )

    def _opcode(self, code: Any) -> tuple[str, int, str | None]:
        value = max(int(code.DeprecatedBuiltinCode()), int(code.BuiltinCode()))
        custom = self.text(code.CustomCode()) or None
        return enum_name("BuiltinOperator", value), int(code.Version()), custom

    def _buffer(self, buffer: Any) -> np.ndarray:
        offset, size = int(buffer.Offset()), int(buffer.Size())
        if offset > 1:  # large models keep data after the flatbuffer
            if offset + size > len(self.data):
                raise _Corrupt("buffer data past the end of the file")
            self.take(1)
            return self.array[offset : offset + size]
        if buffer.DataIsNone():
            return self.array[:0]
        length = buffer.DataLength()
        start = buffer._tab.Vector(buffer._tab.Offset(4))
        if start + length > len(self.data):
            raise _Corrupt("buffer data past the end of the file")
        self.take(1)
        return self.array[start : start + length]

    def _subgraph(
        self, index: int, graph: Any, codes: list[tuple[str, int, str | None]]
    ) -> Subgraph:
        tensors = tuple(
            self._tensor(i, graph.Tensors(i)) for i in range(self.take(graph.TensorsLength()))
        )
        n = len(tensors)
        operators = tuple(
            self._operator(i, graph.Operators(i), codes, n)
            for i in range(self.take(graph.OperatorsLength()))
        )
        inputs, outputs = self.ints(graph, "Inputs"), self.ints(graph, "Outputs")
        if any(not 0 <= t < n for t in inputs + outputs):
            raise _Corrupt(f"subgraph {index} names a tensor that does not exist")
        return Subgraph(index, self.text(graph.Name()), tensors, operators, inputs, outputs)

    def _tensor(self, index: int, tensor: Any) -> Tensor:
        shape = self.ints(tensor, "Shape")
        signature = (
            self.ints(tensor, "ShapeSignature") if not tensor.ShapeSignatureIsNone() else None
        )
        buffer = int(tensor.Buffer())
        if not 0 <= buffer < len(self.buffers):
            raise _Corrupt(f"tensor {index} points at buffer {buffer} of {len(self.buffers)}")
        if any(d < -1 for d in shape):
            raise _Corrupt(f"tensor {index} has a negative dimension")
        sparsity = self._sparsity(tensor.Sparsity())
        result = Tensor(
            index=index,
            name=self.text(tensor.Name()),
            shape=shape,
            shape_signature=signature,
            dtype=enum_name("TensorType", tensor.Type()),
            buffer=buffer,
            quantization=self._quantization(tensor.Quantization()),
            sparsity=sparsity,
            is_variable=bool(tensor.IsVariable()),
        )
        self._check_data_size(result)
        return result

    def _check_data_size(self, tensor: Tensor) -> None:
        """Constant data must be whole elements, and dense data exactly prod(shape) of them."""
        raw, dtype = self.buffers[tensor.buffer], tensor.numpy_dtype
        if len(raw) == 0 or dtype is None:
            return
        if len(raw) % dtype.itemsize:
            raise _Corrupt(f"tensor {tensor.index} has a partial {tensor.dtype} element")
        dense = tensor.sparsity is None and all(d >= 0 for d in tensor.shape)
        if dense and len(raw) // dtype.itemsize != tensor.dense_size:
            raise _Corrupt(f"tensor {tensor.index} data does not match its shape {tensor.shape}")

    def _quantization(self, quant: Any) -> Quantization | None:
        if quant is None:
            return None
        scale = self.floats(quant, "Scale")
        zero_point = self.ints(quant, "ZeroPoint")
        if not scale:
            return None
        if zero_point and len(zero_point) != len(scale):
            raise _Corrupt("quantization has different numbers of scales and zero points")
        return Quantization(
            scale=scale,
            zero_point=zero_point or (0,) * len(scale),
            quantized_dimension=int(quant.QuantizedDimension()),
            min=self.floats(quant, "Min"),
            max=self.floats(quant, "Max"),
        )

    def _sparsity(self, sparsity: Any) -> Sparsity | None:
        if sparsity is None:
            return None
        dims = tuple(
            self._dimension(sparsity.DimMetadata(i))
            for i in range(self.take(sparsity.DimMetadataLength()))
        )
        order = self.ints(sparsity, "TraversalOrder")
        if len(dims) != len(order):
            raise _Corrupt("sparsity metadata does not match its traversal order")
        return Sparsity(order, self.ints(sparsity, "BlockMap"), dims)

    def _dimension(self, dim: Any) -> DimensionMetadata:
        fmt = enum_name("DimensionType", dim.Format())
        if fmt == "DENSE":
            return DimensionMetadata(fmt, int(dim.DenseSize()))
        if fmt != "SPARSE_CSR":
            raise _Corrupt(f"unknown sparse dimension format {fmt}")
        return DimensionMetadata(
            fmt,
            int(dim.DenseSize()),
            self._index_vector(dim.ArraySegmentsType(), dim.ArraySegments()),
            self._index_vector(dim.ArrayIndicesType(), dim.ArrayIndices()),
        )

    def _index_vector(self, kind: int, table: Any) -> tuple[int, ...]:
        s = self.schema
        classes = {
            s.SparseIndexVector.Int32Vector: s.Int32Vector,
            s.SparseIndexVector.Uint16Vector: s.Uint16Vector,
            s.SparseIndexVector.Uint8Vector: s.Uint8Vector,
        }
        if table is None or kind not in classes:
            raise _Corrupt("sparse dimension without index arrays")
        vector = classes[kind]()
        vector.Init(table.Bytes, table.Pos)
        return self.ints(vector, "Values")

    def _operator(
        self, index: int, op: Any, codes: list[tuple[str, int, str | None]], n_tensors: int
    ) -> Operator:
        code = int(op.OpcodeIndex())
        if not 0 <= code < len(codes):
            raise _Corrupt(f"operator {index} uses opcode {code} of {len(codes)}")
        name, version, custom = codes[code]
        inputs, outputs = self.ints(op, "Inputs"), self.ints(op, "Outputs")
        if any(not -1 <= t < n_tensors for t in inputs) or any(
            not 0 <= t < n_tensors for t in outputs
        ):
            raise _Corrupt(f"operator {index} ({name}) names a tensor that does not exist")
        options_type, options = self._options(op)
        return Operator(index, name, version, inputs, outputs, options_type, options, custom)

    def _options(self, op: Any) -> tuple[str | None, dict[str, Any]]:
        s = self.schema
        for enum, kind_getter, table_getter, creator in (
            ("BuiltinOptions", op.BuiltinOptionsType, op.BuiltinOptions, s.BuiltinOptionsCreator),
            (
                "BuiltinOptions2",
                op.BuiltinOptions2Type,
                op.BuiltinOptions2,
                s.BuiltinOptions2Creator,
            ),
        ):
            kind = int(kind_getter())
            if kind:
                table = table_getter()
                unpacked = creator(kind, table) if table is not None else None
                return enum_name(enum, kind), self._plain(unpacked, depth=0)
        return None, {}

    def _plain(self, obj: Any, depth: int) -> dict[str, Any]:
        """An options object as a snake_case dict of plain values (enums by name where known)."""
        if obj is None or depth > 3:
            return {}
        result: dict[str, Any] = {}
        for key, value in vars(obj).items():
            name = "".join("_" + c.lower() if c.isupper() else c for c in key)
            if isinstance(value, np.ndarray):
                self.take(value.size)
                value = tuple(value.tolist())
            elif isinstance(value, list):
                self.take(len(value))
                value = tuple(
                    self._plain(v, depth + 1) if hasattr(v, "__dict__") else v for v in value
                )
            elif hasattr(value, "__dict__"):
                value = self._plain(value, depth + 1)
            if name in _OPTION_ENUMS and isinstance(value, int):
                value = enum_name(_OPTION_ENUMS[name], value)
            result[name] = value
        return result

    def _signature(self, sig: Any, subgraphs: tuple[Subgraph, ...]) -> Signature:
        index = int(sig.SubgraphIndex())
        if not 0 <= index < len(subgraphs):
            raise _Corrupt("signature names a subgraph that does not exist")
        n = len(subgraphs[index].tensors)

        def tensor_map(length: int, getter: Any) -> dict[str, int]:
            mapping = {}
            for i in range(self.take(length)):
                entry = getter(i)
                tensor = int(entry.TensorIndex())
                if not 0 <= tensor < n:
                    raise _Corrupt("signature names a tensor that does not exist")
                mapping[self.text(entry.Name())] = tensor
            return mapping

        return Signature(
            key=self.text(sig.SignatureKey()),
            subgraph=index,
            inputs=tensor_map(sig.InputsLength(), sig.Inputs),
            outputs=tensor_map(sig.OutputsLength(), sig.Outputs),
        )
