"""Opening files inside the spool without being walked out of it.

The spool is a directory any process of the user can write to; a symlink or a FIFO planted in
it must not make the agent write, chmod, delete or read outside it, nor hang. So the last path
component is never followed (O_NOFOLLOW), only regular files are used, and reads are capped.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Optional

from .errors import AgentError

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
NONBLOCK = getattr(os, "O_NONBLOCK", 0)
CLOEXEC = getattr(os, "O_CLOEXEC", 0)
DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def open_regular(
    path: str, flags: int = os.O_RDONLY, mode: int = 0o600, root: Optional[str] = None
) -> int:
    """An fd of the regular file at `path`; AgentError naming it if it is a link, FIFO, device.

    With `root` (the spool), each directory from there down is opened relative to the one
    above with O_NOFOLLOW, so a directory swapped for a link after a check leads nowhere.
    """
    try:
        fd = _open_nofollow(path, flags | NOFOLLOW | NONBLOCK | CLOEXEC, mode, root)
    except OSError as exc:
        if os.path.islink(path) or exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise AgentError(
                f"{path} is a symlink, or a symlink or non-directory lies on its way; the "
                "agent follows no links in its spool: remove it"
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


def _open_nofollow(path: str, flags: int, mode: int, root: Optional[str]) -> int:
    inside = root is not None and _under(path, root)
    if not inside or os.open not in os.supports_dir_fd or not NOFOLLOW:
        return os.open(path, flags, mode)
    assert root is not None
    parts = os.path.relpath(os.path.abspath(path), os.path.abspath(root)).split(os.sep)
    directory = os.open(root, os.O_RDONLY | DIRECTORY | CLOEXEC)
    try:
        for part in parts[:-1]:
            below = os.open(part, os.O_RDONLY | DIRECTORY | NOFOLLOW | CLOEXEC, dir_fd=directory)
            os.close(directory)
            directory = below
        return os.open(parts[-1], flags, mode, dir_fd=directory)
    finally:
        os.close(directory)


def _under(path: str, root: str) -> bool:
    full, base = os.path.abspath(path), os.path.abspath(root)
    return full != base and os.path.commonpath([full, base]) == base


def read_capped(path: str, limit: int, root: Optional[str] = None) -> bytes:
    """The bytes of a regular file, refused with one line when larger than `limit`."""
    fd = open_regular(path, root=root)
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
