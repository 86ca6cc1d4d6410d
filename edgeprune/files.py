"""Checked inputs and all-or-nothing outputs.

Every command reads a file and writes a file; these helpers make the reading fail with one
clear line and the writing leave nothing half-written behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgeprune.errors import UserError


def check_input_path(path: str | os.PathLike[str], what: str = "model") -> Path:
    """An existing file or directory, or a UserError naming it."""
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise UserError(f"{what} {str(path)!r} does not exist")
    if resolved.is_file() and resolved.stat().st_size == 0:
        raise UserError(f"{what} {str(path)!r} is empty")
    return resolved


def check_output_path(
    path: str | os.PathLike[str], suffixes: tuple[str, ...] = (), what: str = "output"
) -> Path:
    """A path whose directory exists and whose suffix is one we write."""
    resolved = Path(path).expanduser()
    parent = resolved.parent if str(resolved.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(
            f"{what} directory {str(parent)!r} does not exist; create it first (mkdir -p {parent})"
        )
    if resolved.is_dir():
        raise UserError(f"{what} {str(path)!r} is a directory; give a file name")
    if suffixes and not any(str(resolved).endswith(s) for s in suffixes):
        raise UserError(f"{what} {str(path)!r} must end with {' or '.join(suffixes)}")
    if not os.access(parent, os.W_OK):
        raise UserError(f"{what} directory {str(parent)!r} is not writable")
    return resolved


def check_log_dir(path: str | os.PathLike[str] | None, what: str = "tensorboard") -> Path | None:
    """A log directory that exists or can be made (its nearest existing parent is a writable
    directory); checked before training so a typo fails at once, not after the first epoch."""
    if path is None:
        return None
    if not str(path).strip():
        raise UserError(f"{what} is empty; give a directory for the logs", params=(what,))
    resolved = Path(path).expanduser()
    if resolved.exists() and not resolved.is_dir():
        raise UserError(
            f"{what} {str(path)!r} is a file; give a directory for the logs", params=(what,)
        )
    existing = resolved
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise UserError(
            f"{what} {str(path)!r} cannot be created: {str(existing)!r} is not a writable "
            "directory",
            params=(what,),
        )
    return resolved


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it into place, else delete it.

    The temp name keeps the final suffix, because Keras and TFLite writers look at it.
    """
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=f".part{''.join(target.suffixes[-1:])}", dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"nothing was written to {tmp}")
        os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
