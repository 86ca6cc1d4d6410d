"""Raw latencies as a compact blob: float64 little-endian, zlib-compressed.

Stored once per measurement instead of inside a JSON copy of the whole result on every
row; 8 bytes or fewer per value, and exact (the floats round-trip bit for bit).
"""

from __future__ import annotations

import sys
import zlib
from array import array
from collections.abc import Sequence

ENCODING = "f8le-zlib"


def encode(values: Sequence[float]) -> bytes:
    data = array("d", values)
    if sys.byteorder != "little":
        data.byteswap()
    return zlib.compress(data.tobytes(), 6)


def decode(blob: bytes, encoding: str = ENCODING) -> list[float]:
    if encoding != ENCODING:
        raise ValueError(f"latencies stored as {encoding!r}, which this edgeprune cannot read")
    data = array("d")
    data.frombytes(zlib.decompress(blob))
    if sys.byteorder != "little":
        data.byteswap()
    return data.tolist()
