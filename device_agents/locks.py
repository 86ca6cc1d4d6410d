"""flock-based locks: one daemon per spool, and one benchmark at a time on the board.

`daemon.lock` is held for the daemon's whole life (its pid inside) so a second daemon on the
same spool refuses to start. `bench.lock` is held around each benchmark, by the daemon and by
`run`, so two benchmarks never disturb each other. Both are released by the kernel when the
holder dies, even by kill -9: no stale lock files to clean up. They are opened without
following a symlink (safe_files), so a planted link cannot make us truncate another file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from typing import Any, Dict, Iterator, Optional

from .errors import AgentError
from .safe_files import open_regular

DAEMON_LOCK = "daemon.lock"
BENCH_LOCK = "bench.lock"


class LockBusy(Exception):
    def __init__(self, pid: Optional[int]) -> None:
        super().__init__(pid)
        self.pid = pid


def _read_pid(fd: int) -> Optional[int]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 64).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def acquire_daemon_lock(spool_root: str) -> int:
    """Take the daemon lock and write our pid into it; LockBusy(pid) if a daemon holds it."""
    path = os.path.join(spool_root, DAEMON_LOCK)
    fd = open_regular(path, os.O_RDWR | os.O_CREAT, root=spool_root)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        pid = _read_pid(fd)
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            raise LockBusy(pid) from None
        raise
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError:
        pass  # a full disk: the lock still holds, only the pid goes unrecorded
    return fd


def daemon_state(spool_root: str) -> Dict[str, Any]:
    """{"running": bool, "pid": int or None}, without creating anything in the spool."""
    path = os.path.join(spool_root, DAEMON_LOCK)
    try:
        fd = open_regular(path, root=spool_root)
    except (OSError, AgentError):
        return {"running": False, "pid": None}
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return {"running": True, "pid": _read_pid(fd)}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return {"running": False, "pid": None}
    finally:
        os.close(fd)


@contextlib.contextmanager
def bench_lock(spool_root: str) -> Iterator[None]:
    """Hold the board's benchmark lock (waits for a benchmark already running)."""
    fd = open_regular(os.path.join(spool_root, BENCH_LOCK), os.O_RDWR | os.O_CREAT, root=spool_root)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def bench_lock_busy(spool_root: str) -> bool:
    path = os.path.join(spool_root, BENCH_LOCK)
    try:
        fd = open_regular(path, root=spool_root)
    except (OSError, AgentError):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)
