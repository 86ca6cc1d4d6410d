"""Reaching a device through its ProxyJump hosts: each hop's `direct-tcpip` channel carries
the next hop's SSH connection, so every hop's host key and login are checked as a device's.

Closing the device's connection closes the whole chain (the tunnel socket owns the hops).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from typing import Any

import paramiko

from edgeprune.fleet.inventory import Device
from edgeprune.fleet.transport import ConnectionLost

Opener = Callable[..., paramiko.Transport]


class TunnelSocket:
    """A channel that paramiko uses as a socket; closing it closes the hops behind it."""

    def __init__(self, channel: paramiko.Channel, hops: list[paramiko.Transport]) -> None:
        self._channel = channel
        self.hops = hops

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel, name)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the hop may be gone already: nothing to tell
            self._channel.close()
        for hop in reversed(self.hops):
            with contextlib.suppress(Exception):
                hop.close()


def open_tunnel(via: paramiko.Transport, d: Device, where: str) -> TunnelSocket:
    """A `direct-tcpip` channel from `via` to d's address (the jump host dials it)."""
    try:
        channel = via.open_channel(
            "direct-tcpip", (d.hostname, d.port), ("127.0.0.1", 0), timeout=d.connect_timeout
        )
    except paramiko.ChannelException as exc:
        raise ConnectionLost(f"{where}: the jump host cannot connect: {exc.text}") from None
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise ConnectionLost(f"{where}: the jump host cannot connect: {exc}") from None
    channel.settimeout(d.connect_timeout)
    return TunnelSocket(channel, [])


def open_through_jumps(
    d: Device, accept_new_host_key: bool, open_ssh: Opener
) -> paramiko.Transport:
    """Open d's jump hosts in order, then d through the last one; a failure closes them all."""
    hops: list[paramiko.Transport] = []
    try:
        for hop in d.jumps:
            hops.append(open_ssh(hop, accept_new_host_key, via=hops[-1] if hops else None))
        transport = open_ssh(dataclasses.replace(d, jumps=()), accept_new_host_key, via=hops[-1])
    except BaseException:
        for hop_transport in reversed(hops):
            with contextlib.suppress(Exception):
                hop_transport.close()
        raise
    sock = transport.sock
    if isinstance(sock, TunnelSocket):
        sock.hops = hops
    return transport
