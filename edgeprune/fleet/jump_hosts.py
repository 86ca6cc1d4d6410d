"""ProxyJump chains from an ssh_config: every hop resolved through the same config, as ssh -J.

`ProxyJump a,b` reaches `a` (through a's own ProxyJump, if any), then `b` through `a`, then
the device through `b`. Each hop becomes a Device so it is opened, verified and logged into
exactly as a device is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeprune.errors import UserError
from edgeprune.fleet.host_names import is_host_name

if TYPE_CHECKING:
    from edgeprune.fleet.inventory import Device
    from edgeprune.fleet.ssh_config import Resolved, SshConfig

_MAX_HOPS = 8


def parse_jump(spec: str, where: str) -> tuple[str | None, str, int | None]:
    """`[user@]host[:port]` or `ssh://[user@]host[:port]` -> (user, host, port)."""
    text = spec.removeprefix("ssh://")
    user, _, rest = text.rpartition("@")
    port: int | None = None
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port_text = tail.removeprefix(":")
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
    else:
        host, port_text = rest, ""
    if port_text:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise UserError(f"{where}: ProxyJump {spec!r} has a bad port; use [user@]host[:port]")
        port = int(port_text)
    if not is_host_name(host) or (
        user and not user.replace(".", "").replace("-", "").replace("_", "").isalnum()
    ):
        raise UserError(f"{where}: ProxyJump {spec!r} is not [user@]host[:port] with a host name")
    return (user or None, host, port)


def jump_chain(
    config: SshConfig,
    resolved: Resolved,
    owner: str,
    known_hosts: str | None,
    connect_timeout: float,
    where: str,
    depth: int = 0,
) -> tuple[Device, ...]:
    """The hops to open, first hop first, before connecting to `resolved`."""
    if not resolved.proxy_jump:
        return ()
    if depth >= _MAX_HOPS:
        raise UserError(f"{where}: ProxyJump chain longer than {_MAX_HOPS} hops (a loop?)")
    hops: list[Device] = []
    for index, spec in enumerate(resolved.proxy_jump.split(",")):
        user, host, port = parse_jump(spec.strip(), where)
        hop = config.resolve(host, user=user, port=port)
        if hop.proxy_command:
            raise UserError(
                f"{where}: jump host {host!r} uses ProxyCommand in ssh config {config.path!r}, "
                "which edgeprune does not run; use ProxyJump instead"
            )
        if index == 0:  # only the first hop follows its own ProxyJump, as ssh -J does
            hops.extend(
                jump_chain(config, hop, owner, known_hosts, connect_timeout, where, depth + 1)
            )
        hops.append(_hop_device(config, hop, owner, known_hosts, connect_timeout))
    return tuple(hops)


def _hop_device(
    config: SshConfig, hop: Resolved, owner: str, known_hosts: str | None, connect_timeout: float
) -> Device:
    from edgeprune.fleet.inventory import Device

    return Device(
        name=f"{owner}'s jump host {hop.host}",
        kind="linux",
        host=hop.host,
        hostname=hop.hostname,
        port=hop.port,
        user=hop.user,
        identity_files=tuple(config.identity_paths(hop)),
        known_hosts=known_hosts or hop.known_hosts[0],
        connect_timeout=hop.connect_timeout or connect_timeout,
    )
