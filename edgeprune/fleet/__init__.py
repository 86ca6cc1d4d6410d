"""Devices over SSH (and `local`): inventory, transports, deploy, agent install, remote bench.

The public API; the CLI modules (devices, agent, deploy, bench) only parse and print. The
fleet measures and hands results back; recording them is `edgeprune.workflows.bench`.
"""

from edgeprune.fleet.agent_client import AgentClient, AgentError, AgentNotInstalled
from edgeprune.fleet.artifacts import LocalModel, load_model, load_models
from edgeprune.fleet.deploy import DeployedFile, deploy, deploy_to_session, send_file
from edgeprune.fleet.fanout import DeviceOutcome, GroupResult, fan_out
from edgeprune.fleet.health import DeviceHealth, check_devices
from edgeprune.fleet.install import InstallReport, install_agent, install_agents
from edgeprune.fleet.inventory import Device, Inventory, load_inventory
from edgeprune.fleet.options import BenchOptions, DeployOptions
from edgeprune.fleet.session import ConnectOptions, DeviceSession, each_session, open_transport
from edgeprune.fleet.transport import (
    CommandResult,
    CommandTimeout,
    ConnectionLost,
    ConnectionRefusedByPolicy,
    DiskFull,
    Transport,
)

__all__ = [
    "AgentClient",
    "AgentError",
    "AgentNotInstalled",
    "BenchOptions",
    "CommandResult",
    "CommandTimeout",
    "ConnectOptions",
    "ConnectionLost",
    "ConnectionRefusedByPolicy",
    "DeployOptions",
    "DeployedFile",
    "Device",
    "DeviceHealth",
    "DeviceOutcome",
    "DeviceSession",
    "DiskFull",
    "GroupResult",
    "InstallReport",
    "Inventory",
    "LocalModel",
    "Transport",
    "check_devices",
    "deploy",
    "deploy_to_session",
    "each_session",
    "fan_out",
    "install_agent",
    "install_agents",
    "load_inventory",
    "load_model",
    "load_models",
    "open_transport",
    "send_file",
]
