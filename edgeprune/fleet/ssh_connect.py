"""Opening one SSH connection: TCP, handshake (AES-GCM preferred), host key, key-only login."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time

import paramiko

from edgeprune.errors import DeviceError
from edgeprune.fleet.host_keys import preferred_key_types, verify_host_key
from edgeprune.fleet.inventory import Device
from edgeprune.fleet.jump_connect import TunnelSocket, open_through_jumps, open_tunnel
from edgeprune.fleet.transport import ConnectionLost, ConnectionRefusedByPolicy

# AES-GCM first: one pass for cipher and MAC, the cheapest per byte with AES-NI.
_CIPHER_ORDER = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr", "aes256-ctr")
_KEEPALIVE_S = 15
_DEFAULT_KEYS = ("id_ed25519", "id_ecdsa", "id_rsa")
# paramiko logs a dropped link from its own thread ("Socket exception: ..."); our one-line
# error already says it, so keep its records off the user's terminal.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


def open_ssh(
    d: Device, accept_new_host_key: bool = False, via: paramiko.Transport | None = None
) -> paramiko.Transport:
    """One attempt: TCP (or a tunnel through `via`, or d's ProxyJump hosts), handshake,
    host-key check, key login.

    Transient failures are ConnectionLost; a refused key or login is ConnectionRefusedByPolicy.
    """
    if d.jumps and via is None:
        return open_through_jumps(d, accept_new_host_key, open_ssh)
    where = f"device {d.name} ({d.user}@{d.hostname}:{d.port})"
    known_files = [d.known_hosts, *d.known_hosts_also, *d.global_known_hosts]
    try:
        if via is not None:
            sock: socket.socket | TunnelSocket = open_tunnel(via, d, where)
        else:
            sock = socket.create_connection((d.hostname, d.port), timeout=d.connect_timeout)
    except socket.gaierror as exc:
        raise DeviceError(f"{where}: cannot resolve host {d.hostname!r} ({exc.strerror})") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConnectionLost(f"{where}: cannot connect: {reason}") from None
    transport = paramiko.Transport(sock)
    options = transport.get_security_options()
    offered = list(options.ciphers)
    options.ciphers = tuple(
        [c for c in _CIPHER_ORDER if c in offered] + [c for c in offered if c not in _CIPHER_ORDER]
    )
    try:  # the recorded key types first, as ssh orders HostKeyAlgorithms
        options.key_types = preferred_key_types(d.hostname, d.port, options.key_types, known_files)
    except BaseException:
        transport.close()
        raise
    transport.banner_timeout = d.connect_timeout
    transport.handshake_timeout = d.connect_timeout
    silent = ConnectionLost(
        f"{where}: no SSH answer within {d.connect_timeout:g} s (the port takes connections "
        "but no SSH server replies); is the board hung?"
    )
    started = time.monotonic()
    try:
        transport.start_client(timeout=d.connect_timeout)
        server_key = transport.get_remote_server_key()  # "No existing session" if it timed out
    except (paramiko.SSHException, EOFError, OSError) as exc:
        transport.close()
        if time.monotonic() - started >= d.connect_timeout * 0.9:
            raise silent from None
        raise ConnectionLost(
            f"{where}: SSH handshake failed: {exc or type(exc).__name__}"
        ) from None
    try:
        verify_host_key(
            d.name,
            d.hostname,
            d.port,
            server_key,
            d.known_hosts,
            accept_new=accept_new_host_key,
            also_read=d.known_hosts_also,
            global_files=d.global_known_hosts,
        )
        authenticate(transport, d, where)
    except BaseException:
        transport.close()
        raise
    transport.set_keepalive(_KEEPALIVE_S)
    return transport


def authenticate(transport: paramiko.Transport, d: Device, where: str) -> None:
    """Log in with the identity file(s), then ssh-agent keys; never a password."""
    keys: list[tuple[str, paramiko.PKey]] = []
    problems: list[str] = []
    files = list(d.identity_files) or [
        os.path.expanduser(f"~/.ssh/{n}")
        for n in _DEFAULT_KEYS
        if os.path.isfile(os.path.expanduser(f"~/.ssh/{n}"))
    ]
    for path in files:
        if not os.path.isfile(path):
            problems.append(f"identity_file {path!r} does not exist")
            continue
        try:
            keys.append((path, paramiko.PKey.from_path(path)))
        except paramiko.PasswordRequiredException:
            problems.append(f"{path} is encrypted (load it with ssh-add)")
        except TypeError as exc:  # paramiko 3 + cryptography say "password-protected" this way
            if "password" not in str(exc).lower():
                raise
            problems.append(f"{path} is encrypted (load it with ssh-add)")
        except (OSError, paramiko.SSHException, ValueError) as exc:
            problems.append(f"{path} cannot be read ({exc})")
    with contextlib.suppress(paramiko.SSHException, OSError):
        keys.extend(("ssh-agent", key) for key in paramiko.Agent().get_keys())
    if not keys:
        detail = "; ".join(problems) or "set identity_file in the inventory or start ssh-agent"
        raise ConnectionRefusedByPolicy(f"{where}: no SSH key to log in with: {detail}")
    for _source, key in keys:
        try:
            transport.auth_publickey(d.user, key)
        except paramiko.BadAuthenticationType as exc:
            raise ConnectionRefusedByPolicy(
                f"{where}: the server does not accept SSH keys (it allows {', '.join(exc.allowed_types)})"
            ) from None
        except paramiko.AuthenticationException:
            continue
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ConnectionLost(f"{where}: connection lost while logging in: {exc}") from None
        if transport.is_authenticated():
            return
    tried = ", ".join(source for source, _ in keys)
    raise ConnectionRefusedByPolicy(
        f"{where}: login refused for key(s) {tried}; add the public key to "
        f"~{d.user}/.ssh/authorized_keys on the board"
    )
