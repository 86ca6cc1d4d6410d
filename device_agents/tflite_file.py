"""A minimal, bounds-checked reader of the TFLite flatbuffer: enough to reject a file that is
not a model (or is cut short) before any runtime touches it, and to see whether the model
stores weights sparse (DENSIFY ops) or holds int8 tensors.

It reads only the few schema fields it needs (tensorflow/lite/schema/schema.fbs) and never
the runtime's own modules, so it costs a memory map and a few thousand struct reads even on
a 100 MB model. Every offset is checked: a hostile or corrupt file raises `ModelFileError`,
never IndexError or struct.error.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field
from typing import Any, List, Optional, Set, Tuple

FILE_IDENTIFIER = b"TFL3"
DENSIFY = 124  # BuiltinOperator.DENSIFY
TENSOR_TYPE_NAMES = {
    0: "float32",
    1: "float16",
    2: "int32",
    3: "uint8",
    4: "int64",
    5: "string",
    6: "bool",
    7: "int16",
    8: "complex64",
    9: "int8",
    10: "float64",
    11: "complex128",
    12: "uint64",
    13: "resource",
    14: "variant",
    15: "uint32",
    16: "uint16",
    17: "int4",
    18: "bfloat16",
}


class ModelFileError(ValueError):
    """The file is not a usable TFLite model; the message says what is wrong with it."""


@dataclass
class TensorFacts:
    name: str
    shape: List[int]
    dtype: str


@dataclass
class ModelFacts:
    """What the agent needs to know about a model before running it."""

    size_bytes: int
    schema_version: int
    builtin_codes: List[int] = field(default_factory=list)
    custom_codes: List[str] = field(default_factory=list)
    subgraphs: int = 0
    inputs: List[TensorFacts] = field(default_factory=list)
    outputs: List[TensorFacts] = field(default_factory=list)
    tensor_types: Set[str] = field(default_factory=set)
    buffers: int = 0

    @property
    def is_sparse(self) -> bool:
        """Weights stored sparse: the runtime densifies them, XNNPACK may run them sparse."""
        return DENSIFY in self.builtin_codes

    @property
    def is_quantized(self) -> bool:
        return any(name in self.tensor_types for name in ("int8", "uint8", "int16", "int4"))

    @property
    def has_int16_activations(self) -> bool:
        """int16x8 (16-bit activations, 8-bit weights): XNNPACK has no kernels for it."""
        return "int16" in self.tensor_types and "int8" in self.tensor_types


class _Reader:
    """Little-endian reads at absolute positions, each checked against the buffer's end."""

    def __init__(self, data: Any, size: int) -> None:
        self.data = data
        self.size = size

    def _unpack(self, fmt: str, pos: int) -> Any:
        width = struct.calcsize(fmt)
        if pos < 0 or pos + width > self.size:
            raise ModelFileError(
                f"truncated or corrupt: an offset points to byte {pos}, past the end of the "
                f"file ({self.size} bytes)"
            )
        return struct.unpack_from(fmt, self.data, pos)[0]

    def u8(self, pos: int) -> int:
        return self._unpack("<B", pos)

    def i8(self, pos: int) -> int:
        return self._unpack("<b", pos)

    def u16(self, pos: int) -> int:
        return self._unpack("<H", pos)

    def i32(self, pos: int) -> int:
        return self._unpack("<i", pos)

    def u32(self, pos: int) -> int:
        return self._unpack("<I", pos)

    def u64(self, pos: int) -> int:
        return self._unpack("<Q", pos)

    def table(self, pos: int) -> _Table:
        return _Table(self, pos)


class _Table:
    def __init__(self, reader: _Reader, pos: int) -> None:
        self.r = reader
        self.pos = pos
        self.vtable = pos - reader.i32(pos)
        self.vtable_len = reader.u16(self.vtable)
        if self.vtable_len < 4 or self.vtable_len % 2:
            raise ModelFileError("corrupt: a flatbuffer vtable has an impossible size")

    def _field(self, index: int) -> Optional[int]:
        slot = 4 + 2 * index
        if slot + 2 > self.vtable_len:
            return None
        offset = self.r.u16(self.vtable + slot)
        return None if offset == 0 else self.pos + offset

    def has(self, index: int) -> bool:
        return self._field(index) is not None

    def _target(self, index: int) -> Optional[int]:
        pos = self._field(index)
        return None if pos is None else pos + self.r.u32(pos)

    def scalar(self, index: int, kind: str, default: int = 0) -> int:
        pos = self._field(index)
        return default if pos is None else getattr(self.r, kind)(pos)

    def table(self, index: int) -> Optional[_Table]:
        target = self._target(index)
        return None if target is None else self.r.table(target)

    def vector(self, index: int, elem_size: int) -> Tuple[int, int]:
        """(start, length) of a vector field; (0, 0) when absent. The whole body must fit."""
        target = self._target(index)
        if target is None:
            return 0, 0
        length = self.r.u32(target)
        start = target + 4
        if start + length * elem_size > self.r.size:
            raise ModelFileError(
                f"truncated or corrupt: a vector of {length} items runs past the end of the "
                f"file ({self.r.size} bytes)"
            )
        return start, length

    def tables(self, index: int) -> List[_Table]:
        start, length = self.vector(index, 4)
        return [self.r.table(start + 4 * i + self.r.u32(start + 4 * i)) for i in range(length)]

    def ints(self, index: int) -> List[int]:
        start, length = self.vector(index, 4)
        return [self.r.i32(start + 4 * i) for i in range(length)]

    def string(self, index: int) -> str:
        start, length = self.vector(index, 1)
        if length == 0:
            return ""
        return bytes(self.r.data[start : start + length]).decode("utf-8", "replace")


def inspect_model(path: str) -> ModelFacts:
    """Read the facts of a .tflite file, or raise ModelFileError saying why it is not one."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size < 8:
                raise ModelFileError(f"not a TFLite model: the file has only {size} bytes")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return inspect_bytes(data, size)
    except OSError as exc:
        raise ModelFileError(f"cannot read the model file: {exc.strerror or exc}") from None


def inspect_bytes(data: Any, size: Optional[int] = None) -> ModelFacts:
    size = len(data) if size is None else size
    if size < 8:
        raise ModelFileError(f"not a TFLite model: the file has only {size} bytes")
    if bytes(data[4:8]) != FILE_IDENTIFIER:
        raise ModelFileError(
            "not a TFLite model: the file lacks the 'TFL3' flatbuffer identifier at byte 4"
        )
    reader = _Reader(data, size)
    try:
        return _read_model(reader, size)
    except RecursionError:  # pragma: no cover - tables do not recurse here
        raise ModelFileError("corrupt: nested too deeply") from None


def _read_model(r: _Reader, size: int) -> ModelFacts:
    model = r.table(r.u32(0))
    facts = ModelFacts(size_bytes=size, schema_version=model.scalar(0, "u32"))
    if facts.schema_version != 3:
        raise ModelFileError(
            f"not a supported TFLite model: schema version {facts.schema_version} (expected 3)"
        )
    for code in model.tables(1):
        deprecated = code.scalar(0, "i8")
        builtin = code.scalar(3, "i32")
        facts.builtin_codes.append(max(deprecated, builtin))
        if code.has(1):
            facts.custom_codes.append(code.string(1))
    subgraphs = model.tables(2)
    facts.subgraphs = len(subgraphs)
    if not subgraphs:
        raise ModelFileError("not a usable TFLite model: it has no subgraph")
    for index, subgraph in enumerate(subgraphs):
        tensors = subgraph.tables(0)
        for tensor in tensors:
            facts.tensor_types.add(TENSOR_TYPE_NAMES.get(tensor.scalar(1, "i8"), "unknown"))
        if index == 0:
            facts.inputs = [_tensor_facts(tensors, i) for i in subgraph.ints(1)]
            facts.outputs = [_tensor_facts(tensors, i) for i in subgraph.ints(2)]
    buffers = model.tables(4)
    facts.buffers = len(buffers)
    for number, buffer in enumerate(buffers):
        buffer.vector(0, 1)  # inline data must fit in the file
        offset = buffer.scalar(1, "u64")
        length = buffer.scalar(2, "u64")
        if offset > 1 and offset + length > size:
            raise ModelFileError(
                f"truncated: buffer {number} ends at byte {offset + length}, past the end of "
                f"the file ({size} bytes)"
            )
    return facts


def _tensor_facts(tensors: List[_Table], index: int) -> TensorFacts:
    if not 0 <= index < len(tensors):
        raise ModelFileError(
            f"corrupt: subgraph input/output names tensor {index}, which does not exist"
        )
    tensor = tensors[index]
    return TensorFacts(
        name=tensor.string(3),
        shape=tensor.ints(0),
        dtype=TENSOR_TYPE_NAMES.get(tensor.scalar(1, "i8"), "unknown"),
    )
