"""Tell an input set's format by its first bytes, without importing numpy."""

from __future__ import annotations

from typing import Optional

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a .npz is a zip (the second: an empty one)


def inputs_suffix(path: str) -> Optional[str]:
    """'.npy' or '.npz' by magic bytes; None for anything else or an unreadable file."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(6)
    except OSError:
        return None
    if head.startswith(NPY_MAGIC):
        return ".npy"
    if head[:4] in ZIP_MAGICS:
        return ".npz"
    return None
