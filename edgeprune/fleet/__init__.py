"""Devices over SSH (and `local`): inventory, transports, deploy, agent install, remote bench.

The public API; the CLI modules (devices, agent, deploy, bench) only parse and print. The
fleet measures and hands results back; recording them is `edgeprune.workflows.bench`.
Names are imported on first use, so `edgeprune.fleet.options` (which every CLI command
reads for its flags) does not pull in SSH.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES: dict[str, str] = {
    "AgentClient": "edgeprune.fleet.agent_client",
    "AgentError": "edgeprune.fleet.agent_client",
    "AgentNotInstalled": "edgeprune.fleet.agent_client",
    "BenchOptions": "edgeprune.fleet.options",
    "CommandResult": "edgeprune.fleet.transport",
    "CommandTimeout": "edgeprune.fleet.transport",
    "ConnectOptions": "edgeprune.fleet.session",
    "ConnectionLost": "edgeprune.fleet.transport",
    "ConnectionRefusedByPolicy": "edgeprune.fleet.transport",
    "DeployOptions": "edgeprune.fleet.options",
    "DeployedFile": "edgeprune.fleet.deploy",
    "Device": "edgeprune.fleet.inventory",
    "DeviceHealth": "edgeprune.fleet.health",
    "DeviceOutcome": "edgeprune.fleet.fanout",
    "DeviceSession": "edgeprune.fleet.session",
    "DiskFull": "edgeprune.fleet.transport",
    "GroupResult": "edgeprune.fleet.fanout",
    "InstallReport": "edgeprune.fleet.install",
    "Inventory": "edgeprune.fleet.inventory",
    "LocalModel": "edgeprune.fleet.artifacts",
    "Transport": "edgeprune.fleet.transport",
    "check_devices": "edgeprune.fleet.health",
    "deploy": "edgeprune.fleet.deploy",
    "deploy_to_session": "edgeprune.fleet.deploy",
    "each_session": "edgeprune.fleet.session",
    "fan_out": "edgeprune.fleet.fanout",
    "install_agent": "edgeprune.fleet.install",
    "install_agents": "edgeprune.fleet.install",
    "load_inventory": "edgeprune.fleet.inventory",
    "load_model": "edgeprune.fleet.artifacts",
    "load_models": "edgeprune.fleet.artifacts",
    "open_transport": "edgeprune.fleet.session",
    "send_file": "edgeprune.fleet.deploy",
}
"""Where each public name lives."""

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
