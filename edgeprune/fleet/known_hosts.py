"""A reader of OpenSSH known_hosts files, matching host names the way `ssh` does.

Patterns (`*`, `?`), comma lists with `!negations`, hashed names (`|1|salt|hash`) and the
`@revoked` / `@cert-authority` markers are understood; keys are compared as raw blobs, so a
key type paramiko cannot parse still counts. A malformed line is skipped with a warning
naming file:line, as `ssh` skips it, instead of making the whole file unreadable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
DEFAULT_USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
REVOKED = "@revoked"
CERT_AUTHORITY = "@cert-authority"
_MARKERS = (REVOKED, CERT_AUTHORITY)
_HASH_MAGIC = "|1|"
_MAX_FILE_BYTES = 16 * 1024 * 1024

_log = logging.getLogger(__name__)
_warned: set[tuple[str, int, str]] = set()
_warned_lock = threading.Lock()


class KnownHostsUnreadable(Exception):
    """A known_hosts file exists but cannot be read (permissions, not text, too large)."""


@dataclass(frozen=True)
class KnownHostLine:
    """One parsed line: where it is, its marker ("" for a plain key), hosts and key."""

    path: str
    lineno: int
    marker: str
    hosts: str
    key_type: str
    blob: bytes

    @property
    def where(self) -> str:
        return f"{self.path}:{self.lineno}"

    @property
    def is_pattern(self) -> bool:
        """True when `ssh-keygen -R NAME` would not remove it (wildcards, lists, negations)."""
        return not self.hosts.startswith(_HASH_MAGIC) and any(c in self.hosts for c in "*?,!")

    def matches(self, name: str) -> bool:
        return host_matches(name, self.hosts)


def host_matches(name: str, hosts: str) -> bool:
    """OpenSSH's rule: a hashed name equals, or a positive pattern matches and no `!` one does."""
    name = name.lower()
    if hosts.startswith(_HASH_MAGIC):
        return _hash_matches(name, hosts)
    positive = False
    for pattern in hosts.lower().split(","):
        negated = pattern.startswith("!")
        if _glob(pattern[1:] if negated else pattern).fullmatch(name):
            if negated:
                return False
            positive = True
    return positive


def _glob(pattern: str) -> re.Pattern[str]:
    """`*` and `?` only: `[` is a literal in OpenSSH patterns, unlike fnmatch."""
    return re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    )


def _hash_matches(name: str, hosts: str) -> bool:
    parts = hosts[len(_HASH_MAGIC) :].split("|")
    if len(parts) != 2:
        return False
    try:
        salt, digest = (base64.b64decode(p, validate=True) for p in parts)
    except (binascii.Error, ValueError):
        return False
    mine = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return hmac.compare_digest(mine, digest)


def read_known_hosts(path: str) -> list[KnownHostLine]:
    """Every well-formed line of `path` ([] if it does not exist); bad lines warn and are skipped."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return []
    except IsADirectoryError:
        raise KnownHostsUnreadable(f"known_hosts {path!r} is a directory, not a file") from None
    except OSError as exc:
        raise KnownHostsUnreadable(f"known_hosts {path!r} cannot be read: {exc.strerror}") from None
    if len(data) > _MAX_FILE_BYTES:
        raise KnownHostsUnreadable(
            f"known_hosts {path!r} is larger than {_MAX_FILE_BYTES // (1024 * 1024)} MiB"
        )
    lines: list[KnownHostLine] = []
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        text = raw.strip()
        if not text or text.startswith(b"#"):
            continue
        parsed, problem = _parse(path, lineno, text)
        if parsed is not None:
            lines.append(parsed)
        else:
            _warn_once(path, lineno, problem)
    return lines


def _parse(path: str, lineno: int, raw: bytes) -> tuple[KnownHostLine | None, str]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    fields = text.split()
    marker = ""
    if fields[0].startswith("@"):
        if fields[0] not in _MARKERS:
            return None, f"unknown marker {fields[0][:40]!r} (known: {', '.join(_MARKERS)})"
        marker, fields = fields[0], fields[1:]
    if len(fields) < 3:
        return None, "expected `hosts keytype base64-key [comment]`"
    hosts, key_type, encoded = fields[:3]
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None, f"the {key_type[:40]} key is not valid base64"
    if _blob_type(blob) != key_type:
        return None, f"the key data is not a {key_type[:40]} key"
    return KnownHostLine(path, lineno, marker, hosts, key_type, blob), ""


def _blob_type(blob: bytes) -> str | None:
    """The key type an SSH public-key blob names in its first string."""
    if len(blob) < 4:
        return None
    (size,) = struct.unpack(">I", blob[:4])
    if size > len(blob) - 4:
        return None
    try:
        return blob[4 : 4 + size].decode("ascii")
    except UnicodeDecodeError:
        return None


def _warn_once(path: str, lineno: int, problem: str) -> None:
    key = (path, lineno, problem)
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    _log.warning("warning: known_hosts %s:%d skipped: %s", path, lineno, problem)


def lines_for(name: str, paths: Iterable[str]) -> list[KnownHostLine]:
    """The lines of every file in `paths` (in order) whose hosts match `name`."""
    found: list[KnownHostLine] = []
    for path in paths:
        found.extend(line for line in read_known_hosts(path) if line.matches(name))
    return found


def expand(path: str) -> str:
    """A known_hosts path as OpenSSH opens it: `~` expanded."""
    return os.path.expanduser(path)
