"""Host-key checking as OpenSSH does it: known keys must match; new keys only with consent.

Default (StrictHostKeyChecking=yes): an unknown or changed key is refused. With
`accept_new=True` (StrictHostKeyChecking=accept-new) an unknown host's key is recorded in
the known_hosts file and trusted; a *changed* key is refused either way. A host that is
known with other keys but shows a key not among them counts as changed, so a server
cannot dodge the check by offering another key type.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import threading

import paramiko

from edgeprune.fleet.transport import ConnectionRefusedByPolicy

_append_lock = threading.Lock()


def host_key_name(hostname: str, port: int) -> str:
    """The name known_hosts uses: `host` on port 22, `[host]:port` elsewhere."""
    return hostname if port == 22 else f"[{hostname}]:{port}"


def fingerprint(key: paramiko.PKey) -> str:
    """`SHA256:...`, the form `ssh-keygen -lf` and OpenSSH's prompts show."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _load(path: str) -> paramiko.HostKeys:
    keys = paramiko.HostKeys()
    if os.path.isfile(path):
        try:
            keys.load(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConnectionRefusedByPolicy(f"known_hosts {path!r} cannot be read: {exc}") from None
    return keys


def verify_host_key(
    device_name: str,
    hostname: str,
    port: int,
    key: paramiko.PKey,
    known_hosts: str,
    accept_new: bool = False,
) -> str:
    """Check `key` against `known_hosts`; returns "known" or "recorded", else refuses."""
    name = host_key_name(hostname, port)
    known = _load(known_hosts).lookup(name)
    if known:
        if any(existing == key for existing in known.values()):
            return "known"
        raise ConnectionRefusedByPolicy(
            f"device {device_name}: HOST KEY CHANGED for {name}: it shows {key.get_name()} "
            f"{fingerprint(key)}, which is not the key in {known_hosts!r}; this may be an attack. "
            f"If the board was re-installed, remove the old key with "
            f"ssh-keygen -R '{name}' -f {known_hosts} and connect again"
        )
    if not accept_new:
        raise ConnectionRefusedByPolicy(
            f"device {device_name}: host {name} is not in known_hosts {known_hosts!r} "
            f"(it shows {key.get_name()} {fingerprint(key)}); check that fingerprint on the board, "
            "then rerun with --accept-new-host-key to record it"
        )
    _record(known_hosts, name, key)
    return "recorded"


def _record(path: str, name: str, key: paramiko.PKey) -> None:
    """Append `name keytype base64` under a lock, unless another thread just did."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    with _append_lock:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "r+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            known = _load(path).lookup(name)
            if known and any(existing == key for existing in known.values()):
                return
            if known:
                raise ConnectionRefusedByPolicy(
                    f"host {name} was recorded with another key while connecting; refusing"
                )
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
