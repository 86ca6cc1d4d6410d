"""Hashes and atomic writes: the two things that keep a half-copied file from ever being used."""

from __future__ import annotations

import contextlib
import os
from typing import Union

PathLike = Union[str, "os.PathLike[str]"]
_CHUNK = 1 << 20


def sha256_file(path: PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks so large models do not fill memory."""
    import hashlib  # here: loading OpenSSL is 10+ ms of every agent start, and `has` needs none

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def atomic_write_bytes(path: PathLike, data: bytes, mode: int = 0o600) -> None:
    """Write `data` to a temp file in the same directory, fsync, then rename over `path`.

    A reader sees the old file or the whole new one, never a prefix. On any error the temp
    file is removed and the exception propagates (e.g. ENOSPC on a full disk).
    """
    directory = os.path.dirname(os.path.abspath(path))
    import tempfile  # only when writing: `has` and friends start faster without it

    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def atomic_write_text(path: PathLike, text: str, mode: int = 0o600) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def _fsync_dir(directory: str) -> None:
    """Make a rename durable across a power cut (boards lose power; results must survive)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
