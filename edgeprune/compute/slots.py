"""`board_slot`: exclusive use of one board while a task measures on it.

Under a `DaskExecutor` the slot is a `distributed.Lock("board:<name>")` held on the
scheduler, so workers on every host of the cluster share it (a worker that dies loses its
lease). Anywhere else (a `LocalExecutor`'s workers, or plain code) it is an exclusive
`flock` on a file of this host, which the kernel releases when its process dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from edgeprune.compute.engine import current_engine
from edgeprune.errors import UserError

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def default_lock_dir() -> Path:
    """Where this host's board lock files live (under edgeprune's data directory)."""
    from edgeprune.paths import data_dir

    return data_dir() / "board-locks"


@contextlib.contextmanager
def board_slot(device_name: str) -> Iterator[None]:
    """Hold `device_name`'s slot for the block; waits while another task holds it."""
    if not isinstance(device_name, str) or not device_name.strip():
        raise UserError("device_name must be a device's name", params=("device_name",))
    engine = current_engine()
    if engine is not None and engine.kind == "dask":
        from distributed import Lock

        with Lock(f"board:{device_name}"):
            yield
        return
    folder = Path(engine.lock_dir) if engine and engine.lock_dir else default_lock_dir()
    with _file_lock(folder / lock_file_name(device_name)):
        yield


def lock_file_name(device_name: str) -> str:
    """A file name for the device that is safe whatever the name holds, and one per name."""
    digest = hashlib.sha256(device_name.encode("utf-8")).hexdigest()[:12]
    return f"{_UNSAFE.sub('_', device_name)[:64]}-{digest}.lock"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a separate open file: excludes threads too
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
