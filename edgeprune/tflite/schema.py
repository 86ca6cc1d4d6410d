"""The TFLite flatbuffer schema, taken from the runtime package, plus readable enum names.

We parse models with the generated schema module that ships in `ai_edge_litert` (falling
back to TensorFlow's copy), so the reader follows the runtime's own idea of the format
instead of hand-parsing bytes.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import numpy as np

from edgeprune.errors import UserError

TFLITE_IDENTIFIER = b"TFL3"

# TensorType name -> numpy dtype (None: no plain numpy equivalent, e.g. packed INT4).
NUMPY_DTYPES: dict[str, np.dtype | None] = {
    "FLOAT32": np.dtype("<f4"),
    "FLOAT16": np.dtype("<f2"),
    "FLOAT64": np.dtype("<f8"),
    "INT8": np.dtype("i1"),
    "UINT8": np.dtype("u1"),
    "INT16": np.dtype("<i2"),
    "UINT16": np.dtype("<u2"),
    "INT32": np.dtype("<i4"),
    "UINT32": np.dtype("<u4"),
    "INT64": np.dtype("<i8"),
    "UINT64": np.dtype("<u8"),
    "BOOL": np.dtype("?"),
    "COMPLEX64": np.dtype("<c8"),
    "COMPLEX128": np.dtype("<c16"),
}


@functools.lru_cache(maxsize=1)
def schema_module() -> ModuleType:
    """`schema_py_generated` from ai_edge_litert, else from tensorflow.lite."""
    try:
        from ai_edge_litert import schema_py_generated

        return schema_py_generated
    except ImportError:
        pass
    try:
        from tensorflow.lite.python import schema_py_generated  # type: ignore[no-redef]

        return schema_py_generated
    except ImportError:
        raise UserError(
            "no TFLite schema found; install ai-edge-litert (pip install ai-edge-litert)"
        ) from None


def _names(enum_class: Any) -> dict[int, str]:
    return {
        value: key
        for key, value in vars(enum_class).items()
        if not key.startswith("_") and isinstance(value, int)
    }


@functools.cache
def enum_names(enum: str) -> dict[int, str]:
    """Value -> name for a schema enum, e.g. enum_names('BuiltinOperator')[3] == 'CONV_2D'."""
    return _names(getattr(schema_module(), enum))


def enum_name(enum: str, value: int) -> str:
    return enum_names(enum).get(int(value), f"UNKNOWN_{int(value)}")
