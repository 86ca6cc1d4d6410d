"""Opening files inside the spool without being walked out of it.

The spool is a directory any process of the user can write to; a symlink or a FIFO planted in
it must not make the agent write, chmod, delete or read outside it, nor hang. So the last path
component is never followed (O_NOFOLLOW), only regular files are used, and reads are capped.
"""

from __future__ import annotations

import os
import stat

from .errors import AgentError

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
NONBLOCK = getattr(os, "O_NONBLOCK", 0)
CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def open_regular(path: str, flags: int = os.O_RDONLY, mode: int = 0o600) -> int:
    """An fd of the regular file at `path`; AgentError naming it if it is a link, FIFO, device."""
    try:
        fd = os.open(path, flags | NOFOLLOW | NONBLOCK | CLOEXEC, mode)
    except OSError:
        if os.path.islink(path):
            raise AgentError(
                f"{path} is a symlink; the agent follows no links in its spool: remove it"
            ) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise AgentError(
                f"{path} is not a regular file (a FIFO, device or directory): remove it"
            )
        if NONBLOCK:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_capped(path: str, limit: int) -> bytes:
    """The bytes of a regular file, refused with one line when larger than `limit`."""
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise AgentError(f"{path} is larger than {limit} bytes: refusing to read it")
    return data


def check_directory(path: str, uid: int) -> None:
    """A spool directory must be a real directory of ours; a loose mode is tightened to 0700."""
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise AgentError(
            f"{path} is a symlink (to {os.readlink(path)}); the agent follows no links in "
            "its spool: remove it (it is recreated as a directory)"
        )
    if not stat.S_ISDIR(info.st_mode):
        raise AgentError(f"{path} is not a directory: remove it (it is recreated as one)")
    if info.st_uid != uid:
        raise AgentError(f"{path} belongs to uid {info.st_uid}, not to this user ({uid})")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)
