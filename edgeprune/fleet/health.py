"""`devices check`: can we reach the board, log in, and what does it have (Python, runtime,
agent, disk, daemon)? The probe runs even with no agent installed; the agent's `doctor`
adds its view when it is there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgeprune.fleet.agent_client import AgentNotInstalled
from edgeprune.fleet.fanout import GroupResult
from edgeprune.fleet.inventory import Device
from edgeprune.fleet.probe import missing_runtime_message, probe_device
from edgeprune.fleet.session import ConnectOptions, DeviceSession, each_session


@dataclass
class DeviceHealth:
    """One row of `devices check`."""

    device: str
    address: str
    reachable: bool = True
    auth_ok: bool = True
    python: str = ""
    machine: str = ""
    runtime: str | None = None
    runtime_version: str | None = None
    agent_version: str | None = None
    free_bytes: int | None = None
    daemon_running: bool | None = None
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def check_session(session: DeviceSession) -> DeviceHealth:
    device = session.device
    health = DeviceHealth(device=device.name, address=device.describe())
    facts = probe_device(session.transport, device.python, session.spool)
    health.python = facts.python
    health.machine = facts.machine
    health.free_bytes = (facts.spool or {}).get("free_bytes")
    try:
        doctor = session.agent.doctor()
    except AgentNotInstalled as exc:
        health.problems.append(str(exc))
        if facts.runtimes:
            health.runtime, health.runtime_version = next(iter(facts.runtimes.items()))
        else:
            health.problems.append(missing_runtime_message(device.name, facts))
        return health
    runtime = doctor.get("runtime") or {}
    health.runtime = runtime.get("name")
    health.runtime_version = runtime.get("version")
    health.agent_version = doctor.get("agent_version")
    spool = doctor.get("spool") or {}
    if spool.get("free_bytes") is not None:
        health.free_bytes = spool["free_bytes"]
    health.daemon_running = bool((doctor.get("daemon") or {}).get("running"))
    health.problems.extend(str(p) for p in doctor.get("problems") or [])
    if not health.runtime:
        health.problems.append(missing_runtime_message(device.name, facts))
    return health


def check_devices(
    devices: list[Device],
    *,
    parallel: int | None = None,
    connect: ConnectOptions | None = None,
) -> GroupResult[DeviceHealth]:
    return each_session(devices, check_session, connect=connect, parallel=parallel)
