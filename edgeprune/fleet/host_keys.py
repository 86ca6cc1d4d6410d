"""Host-key checking as OpenSSH does it: known keys must match; new keys only with consent.

Every source `ssh` reads counts: the user files (new keys are recorded in the first) and the
global ones, with their patterns, negations and hashed names (fleet.known_hosts). Default
(StrictHostKeyChecking=yes): an unknown or changed key is refused. With `accept_new=True`
(StrictHostKeyChecking=accept-new) an unknown host's key is recorded and trusted; a
*changed* key is refused either way. A host that is known with other keys but shows a key
not among them counts as changed, so a server cannot dodge the check by offering another
key type; the handshake asks for the recorded types first (`preferred_key_types`), as `ssh`
orders HostKeyAlgorithms, so a server holding several keys shows the recorded one. A key
marked `@revoked` is refused always; `@cert-authority` lines are refused with a clear line
(paramiko does not negotiate host certificates).
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import threading
from collections.abc import Callable, Sequence

import paramiko

from edgeprune.fleet.known_hosts import (
    CERT_AUTHORITY,
    REVOKED,
    KnownHostLine,
    KnownHostsUnreadable,
    lines_for,
)
from edgeprune.fleet.transport import ConnectionRefusedByPolicy

_append_lock = threading.Lock()
# A known_hosts key type and the host-key algorithms that use it.
_ALGORITHMS_OF_TYPE = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}


def host_key_name(hostname: str, port: int) -> str:
    """The name known_hosts uses: `host` on port 22, `[host]:port` elsewhere."""
    return hostname if port == 22 else f"[{hostname}]:{port}"


def fingerprint(key: paramiko.PKey) -> str:
    """`SHA256:...`, the form `ssh-keygen -lf` and OpenSSH's prompts show."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _lines(name: str, paths: Sequence[str]) -> list[KnownHostLine]:
    try:
        return lines_for(name, paths)
    except KnownHostsUnreadable as exc:
        raise ConnectionRefusedByPolicy(str(exc)) from None


def preferred_key_types(
    hostname: str, port: int, offered: Sequence[str], paths: Sequence[str]
) -> tuple[str, ...]:
    """`offered` with the algorithms of the host's recorded key types first (order kept)."""
    name = host_key_name(hostname, port)
    recorded: set[str] = set()
    for line in _lines(name, paths):
        if line.marker == "":
            recorded.update(_ALGORITHMS_OF_TYPE.get(line.key_type, (line.key_type,)))
    first = [algorithm for algorithm in offered if algorithm in recorded]
    return tuple(first + [algorithm for algorithm in offered if algorithm not in recorded])


def verify_host_key(
    device_name: str,
    hostname: str,
    port: int,
    key: paramiko.PKey,
    known_hosts: str,
    accept_new: bool = False,
    *,
    also_read: Sequence[str] = (),
    global_files: Sequence[str] = (),
) -> str:
    """Check `key` against every known_hosts source; returns "known" or "recorded", else refuses.

    `known_hosts` is the first user file (where a new key is recorded), `also_read` the
    further user files, `global_files` the system-wide ones.
    """
    name = host_key_name(hostname, port)
    paths = [known_hosts, *[p for p in also_read if p != known_hosts], *global_files]
    verdict = _judge(device_name, name, key, _lines(name, paths), known_hosts, accept_new)
    if verdict == "known":
        return verdict
    _record(
        known_hosts,
        name,
        key,
        lambda: _judge(device_name, name, key, _lines(name, paths), known_hosts, accept_new),
    )
    return "recorded"


def _judge(
    device_name: str,
    name: str,
    key: paramiko.PKey,
    lines: list[KnownHostLine],
    known_hosts: str,
    accept_new: bool,
) -> str:
    """ "known" or "new" (only when `accept_new`); any other case raises."""
    blob = key.asbytes()
    shown = f"{key.get_name()} {fingerprint(key)}"
    for line in lines:
        if line.marker == REVOKED and line.blob == blob:
            raise ConnectionRefusedByPolicy(
                f"device {device_name}: the host key of {name} ({shown}) is marked @revoked "
                f"in {line.where}; refusing it. Give the board a new host key and record that one"
            )
    plain = [line for line in lines if line.marker == ""]
    if any(line.blob == blob for line in plain):
        return "known"
    if plain:
        first = plain[0]
        how = (
            f"edit line {first.lineno} of {first.path} (a pattern entry)"
            if first.is_pattern
            else f"remove the old key with ssh-keygen -R '{name}' -f {first.path}"
        )
        raise ConnectionRefusedByPolicy(
            f"device {device_name}: HOST KEY CHANGED for {name}: it shows {shown}, which is not "
            f"the key recorded in {first.where}; this may be an attack. "
            f"If the board was re-installed, {how} and connect again"
        )
    authorities = [line for line in lines if line.marker == CERT_AUTHORITY]
    if authorities:
        raise ConnectionRefusedByPolicy(
            f"device {device_name}: {name} is trusted through the @cert-authority line "
            f"{authorities[0].where}, but edgeprune does not check host certificates; it shows "
            f"the plain key {shown}: check that fingerprint on the board and add "
            f"'{name} {key.get_name()} {key.get_base64()}' to {known_hosts}"
        )
    if not accept_new:
        raise ConnectionRefusedByPolicy(
            f"device {device_name}: host {name} is not in known_hosts {known_hosts!r} "
            f"(it shows {shown}); check that fingerprint on the board, "
            "then rerun with --accept-new-host-key to record it"
        )
    return "new"


def _record(path: str, name: str, key: paramiko.PKey, judge_again: Callable[[], str]) -> None:
    """Append `name keytype base64` under a lock, unless another process just did."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    with _append_lock:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "r+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            if judge_again() == "known":
                return
            size = handle.seek(0, os.SEEK_END)
            prefix = b""
            if size > 0:
                handle.seek(size - 1)
                if handle.read(1) != b"\n":
                    prefix = b"\n"
            line = f"{name} {key.get_name()} {key.get_base64()}\n".encode()
            handle.write(prefix + line)
            handle.flush()
            os.fsync(handle.fileno())
