"""Put models on devices: upload to `incoming/`, let the agent verify and admit, skip what is there.

The agent only ever runs `models/<sha256>.tflite`, and only `admit` puts a file there (after
checking its hash), so a dropped connection can at worst leave a `.part` file in
`incoming/`, which the agent never runs (it deletes one left untouched for an hour). What
`has` reports present was verified (see docs/agent-contract.md), so a copy corrupted on the
device is sent again. Drops are retried: the connection is reopened
and the upload resumes from what reached the device; the final hash check catches any
damage. A full disk is refused before sending, or reported with the free space if it
fills during the upload; the part file is removed either way.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeprune.errors import DeviceError
from edgeprune.fleet.agent_client import AgentError
from edgeprune.fleet.artifacts import LocalModel
from edgeprune.fleet.fanout import DEFAULT_CONCURRENCY, GroupResult
from edgeprune.fleet.inventory import Device
from edgeprune.fleet.retry import backoff, retry_on_drop
from edgeprune.fleet.session import ConnectOptions, DeviceSession, each_session
from edgeprune.fleet.transport import ConnectionLost, DiskFull

if TYPE_CHECKING:
    from edgeprune.fleet.options import DeployOptions

DeployProgress = Callable[[str, str, int, int], None]
"""progress(device_name, file_label, bytes_done, bytes_total)."""

_FREE_MARGIN = 1 << 20  # keep 1 MiB spare: a board with a full disk misbehaves


@dataclass
class DeployedFile:
    """What happened to one file on one device."""

    device: str
    name: str
    sha256: str
    status: str  # "sent" | "present"
    bytes_sent: int = 0
    seconds: float = 0.0
    retries: int = 0

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _mb(value: int) -> str:
    return f"{value / 1e6:.1f} MB"


def send_file(
    session: DeviceSession,
    local_path: Path,
    sha256: str,
    *,
    kind: str = "model",
    label: str | None = None,
    progress: DeployProgress | None = None,
    retries: int | None = None,
) -> DeployedFile:
    """Upload one file into `incoming/` and have the agent admit it; resume after drops."""
    device = session.device.name
    label = label or local_path.name
    size = local_path.stat().st_size
    transport = session.transport
    retries = session.device.retries if retries is None else retries
    incoming = session.path("incoming")
    part = f"{incoming}/{sha256}.{secrets.token_hex(6)}.part"
    start = time.perf_counter()
    sent = 0
    attempts = 0
    offset = 0
    admitted = False

    def report(done: int, total: int) -> None:
        nonlocal sent
        sent = max(sent, done)
        if progress:
            progress(device, label, done, total)

    def prepare() -> int:
        transport.makedirs(session.spool)
        transport.makedirs(incoming)
        return transport.free_bytes(incoming)

    try:
        free = retry_on_drop(transport, retries, prepare)
        if free < size + _FREE_MARGIN:
            raise DiskFull(
                f"device {device}: not enough disk for {label}: {_mb(free)} free in "
                f"{session.spool}, {_mb(size)} needed; free space on the board or choose another spool"
            )
        hash_retry_used = False
        recovering = False
        while True:
            try:
                if recovering:  # after a drop: reconnect, then see what reached the device
                    transport.reconnect()
                    if kind == "model" and sha256 in session.agent.has([sha256]):
                        admitted = True  # the admit went through before the drop
                        break
                    done = transport.file_size(part) or 0
                    offset = done if done <= size else 0
                    recovering = False
                transport.upload(str(local_path), part, offset=offset, progress=report)
                session.agent.admit(part, sha256, kind=kind)
                admitted = True
                break
            except ConnectionLost:
                attempts += 1
                if attempts > retries:
                    raise
                time.sleep(backoff(attempts))
                recovering = True
            except AgentError as exc:
                # admit deletes a file whose hash is wrong; a resumed copy gets one fresh try
                if "sha256" in str(exc).lower() and offset and not hash_retry_used:
                    hash_retry_used = True
                    offset = 0
                    continue
                raise
    finally:
        if not admitted:
            with contextlib.suppress(Exception):
                transport.remove(part)
    return DeployedFile(device, label, sha256, "sent", sent, time.perf_counter() - start, attempts)


def deploy_to_session(
    session: DeviceSession,
    models: list[LocalModel],
    progress: DeployProgress | None = None,
) -> list[DeployedFile]:
    """Models that the device lacks are sent one after another; present ones cost one `has`."""
    present = session.agent.has([m.sha256 for m in models])
    outcomes: list[DeployedFile] = []
    for model in models:
        if model.sha256 in present:
            outcomes.append(DeployedFile(session.device.name, model.name, model.sha256, "present"))
            if progress:
                progress(session.device.name, model.name, model.size_bytes, model.size_bytes)
            continue
        outcomes.append(
            send_file(session, model.path, model.sha256, label=model.name, progress=progress)
        )
    return outcomes


def deploy(
    devices: list[Device],
    models: list[LocalModel],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    connect: ConnectOptions | None = None,
    progress: DeployProgress | None = None,
) -> GroupResult[list[DeployedFile]]:
    """Deploy every model to every device, devices in parallel; per-device outcomes."""

    return each_session(
        devices,
        lambda session: deploy_to_session(session, models, progress),
        connect=connect,
        concurrency=concurrency,
    )


@dataclass
class DeployRun:
    """One deploy over devices: each device's files, or its error (`deploy --json`)."""

    group: GroupResult[list[DeployedFile]]

    @property
    def failures(self) -> list[str]:
        """One line per device that failed."""
        return [f"{o.device.name}: {o.message}" for o in self.group.failed]

    def raise_for_failures(self) -> None:
        require_success(self.group, "deploy")

    def to_dict(self) -> dict[str, Any]:
        return {
            "devices": [
                {
                    "device": o.device.name,
                    "ok": o.ok,
                    "error": None if o.ok else o.message,
                    "seconds": o.seconds,
                    "files": [f.to_dict() for f in o.value or []],
                }
                for o in self.group
            ]
        }


def deploy_models(
    models: Sequence[str | os.PathLike[str] | LocalModel],
    devices: list[Device],
    options: DeployOptions | None = None,
    *,
    progress: DeployProgress | None = None,
) -> DeployRun:
    """Check the model files, then deploy them to every device: what `edgeprune deploy` and
    `ep.deploy` run. Failures do not raise here: see `DeployRun.raise_for_failures()`."""
    from edgeprune.fleet.artifacts import as_local_models
    from edgeprune.fleet.options import DeployOptions

    chosen = options or DeployOptions()
    group = deploy(
        devices,
        as_local_models(models),
        concurrency=chosen.concurrency,
        connect=chosen.connect(),
        progress=progress,
    )
    return DeployRun(group)


def require_success(group: GroupResult[Any], what: str) -> None:
    """Raise a DeviceError naming the failed devices (after the caller printed the rest)."""
    failed = group.failed
    if failed:
        names = ", ".join(o.device.name for o in failed)
        raise DeviceError(f"{what} failed on {len(failed)} of {len(group)} device(s): {names}")
