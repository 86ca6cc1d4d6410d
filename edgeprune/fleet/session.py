"""One open device: its transport, its spool (as an absolute device path) and its agent.

The agent is one session (one agent process on the board) for the whole command, opened at
the first agent call and ended by `close`."""

from __future__ import annotations

import posixpath
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from edgeprune.fleet.agent_client import AgentClient
from edgeprune.fleet.fanout import GroupResult, fan_out
from edgeprune.fleet.inventory import Device
from edgeprune.fleet.local_transport import LocalTransport
from edgeprune.fleet.retry import retry_on_drop
from edgeprune.fleet.transport import Transport

T = TypeVar("T")


@dataclass
class ConnectOptions:
    """How to connect: host-key policy is the only knob the user turns per command."""

    accept_new_host_key: bool = False


def open_transport(device: Device, options: ConnectOptions | None = None) -> Transport:
    """A connected transport for `device` (SSH, or subprocesses for `local`)."""
    if device.is_local:
        return LocalTransport(device.name)
    from edgeprune.fleet.ssh_transport import SshTransport  # paramiko only when needed

    return SshTransport(
        device, accept_new_host_key=(options or ConnectOptions()).accept_new_host_key
    )


class DeviceSession:
    """Everything the commands need for one device; close it when done (or use `with`)."""

    def __init__(self, device: Device, transport: Transport) -> None:
        self.device = device
        self.transport = transport
        self.stopping = threading.Event()
        """Set when the command is interrupted: long steps (uploads) stop at their next chunk."""
        self.spool = retry_on_drop(
            transport, device.retries, lambda: transport.expand_path(device.spool)
        )
        self.agent = AgentClient(
            transport,
            self.agent_python,
            self.spool,
            command_timeout=device.command_timeout,
            retries=device.retries,
        )

    @classmethod
    def open(cls, device: Device, options: ConnectOptions | None = None) -> DeviceSession:
        transport = open_transport(device, options)
        try:
            return cls(device, transport)
        except BaseException:
            transport.close()
            raise

    @property
    def agent_python(self) -> str:
        """The interpreter that runs the agent: the spool's venv on a board, ours for `local`."""
        if self.device.is_local:
            return self.device.python
        return self.path("venv", "bin", "python")

    def path(self, *parts: str) -> str:
        """A path inside the spool."""
        return posixpath.join(self.spool, *parts)

    def close(self) -> None:
        try:
            self.agent.close()
        finally:
            self.transport.close()

    def __enter__(self) -> DeviceSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def each_session(
    devices: list[Device],
    work: Callable[[DeviceSession], T],
    *,
    connect: ConnectOptions | None = None,
    parallel: int | None = None,
) -> GroupResult[T]:
    """`work(session)` on every device, each in its own open session, devices in parallel."""

    stop = threading.Event()

    def one(device: Device) -> T:
        with DeviceSession.open(device, connect) as session:
            session.stopping = stop
            return work(session)

    return fan_out(devices, one, parallel, stop=stop)
