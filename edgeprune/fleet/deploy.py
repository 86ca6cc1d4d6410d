"""Put models on devices: upload to `incoming/`, let the agent verify and admit, skip what is there.

The agent only ever runs `models/<sha256>.tflite`, and only `admit` puts a file there (after
checking its hash), so an interrupted upload can at worst leave a `.part` file in
`incoming/`, which the agent never runs. What `has` reports present was verified (see
docs/agent-contract.md), so a copy corrupted on the device is sent again.

Uploads resume, within a command and across commands: a part cut off by a dropped link,
Ctrl-C or a crashed host stays in `incoming/<sha256>.<token>.part`; the next upload of the
same file claims it (agent `part`: an atomic rename to its own token, so two commands never
write one part), compares the sha256 of the part's bytes with the same prefix of the local
file, and sends only the rest; a part whose prefix differs is sent again from zero. The
final hash check at `admit` and its atomic rename stay. The agent removes a part untouched
for a day (device_agents/spool.py PART_GRACE_S). A full disk is refused before sending
(counting what the part already holds), or reported with the free space if it fills during
the upload; the part file is removed then.
"""

from __future__ import annotations

import contextlib
import hashlib
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
from edgeprune.fleet.fanout import GroupResult
from edgeprune.fleet.inventory import Device
from edgeprune.fleet.retry import backoff, retry_on_drop
from edgeprune.fleet.session import ConnectOptions, DeviceSession, each_session
from edgeprune.fleet.transport import ConnectionLost, DiskFull

if TYPE_CHECKING:
    from edgeprune.fleet.options import DeployOptions

DeployProgress = Callable[[str, str, int, int], None]
"""progress(device_name, file_label, bytes_done, bytes_total)."""

_FREE_MARGIN = 1 << 20  # keep 1 MiB spare: a board with a full disk misbehaves
_HASH_CHUNK = 1 << 20


class Stopped(DeviceError):
    """The command was interrupted (Ctrl-C): the upload stopped between chunks, its part kept."""


@dataclass
class DeployedFile:
    """What happened to one file on one device.

    `bytes_sent` counts what crossed the link in this command (every retry included);
    `resumed_from` is how much of an earlier, interrupted upload was kept.
    """

    device: str
    name: str
    sha256: str
    status: str  # "sent" | "present"
    bytes_sent: int = 0
    seconds: float = 0.0
    retries: int = 0
    resumed_from: int = 0

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _mb(value: int) -> str:
    return f"{value / 1e6:.1f} MB"


def _is_part_of(name: str, sha256: str) -> bool:
    return name.startswith(sha256 + ".") and name.endswith(".part")


def prefix_sha256(path: Path, length: int) -> str:
    """sha256 of the first `length` bytes of a local file (what a resumed part must hold)."""
    digest = hashlib.sha256()
    left = length
    with open(path, "rb") as handle:
        while left > 0 and (chunk := handle.read(min(_HASH_CHUNK, left))):
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


class _Upload:
    """One file's way into `incoming/`: the part it owns, where to resume, what was sent."""

    def __init__(self, session: DeviceSession, local_path: Path, sha256: str, label: str) -> None:
        self.session = session
        self.local_path = local_path
        self.sha256 = sha256
        self.label = label
        self.size = local_path.stat().st_size
        self.token = secrets.token_hex(6)
        self.part = session.path("incoming", f"{sha256}.{self.token}.part")
        self.sent = 0  # bytes that crossed the link, over every attempt
        self._mark = 0  # the last `done` seen in this attempt
        self._claims = True  # False for an agent older than `part`: no resume across commands

    def resume_point(self, names: list[str] | None = None) -> int:
        """Bytes of a part (an earlier command's, or this one's before a drop) that can stay.

        `names`: what incoming/ holds, when the caller just listed it; with no part of this
        file there, the agent is not asked (one agent process fewer per file sent).
        """
        agent = self.session.agent
        if names is not None and not any(_is_part_of(name, self.sha256) for name in names):
            return 0
        if self._claims:
            try:
                claimed = agent.claim_part(self.sha256, self.token)
            except AgentError as exc:
                if exc.agent_exit_code != 2:  # 2: an agent that has no `part` command
                    raise
                self._claims = False
            else:
                length = claimed.length
                if (
                    0 < length <= self.size
                    and prefix_sha256(self.local_path, length) == claimed.sha256
                ):
                    return length
                return 0
        length = self.session.transport.file_size(self.part) or 0
        return length if length <= self.size else 0

    def started(self, offset: int) -> None:
        self._mark = offset

    def advanced(self, done: int) -> None:
        """Count what an attempt sent; stop between chunks once the command is interrupted."""
        self.sent += max(0, done - self._mark)
        self._mark = done
        if self.session.stopping.is_set():
            raise Stopped(
                f"device {self.session.device.name}: upload of {self.label} stopped at "
                f"{_mb(done)} of {_mb(self.size)}; the next deploy resumes it"
            )


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
    """Upload one file into `incoming/` and have the agent admit it; resume what is there."""
    device = session.device.name
    label = label or local_path.name
    upload = _Upload(session, local_path, sha256, label)
    size = upload.size
    transport = session.transport
    retries = session.device.retries if retries is None else retries
    incoming = session.path("incoming")
    start = time.perf_counter()
    attempts = 0

    def report(done: int, total: int) -> None:
        upload.advanced(done)
        if progress:
            progress(device, label, done, total)

    def prepare() -> tuple[int, int]:
        names = transport.list_names(incoming)  # one round trip when incoming/ is there
        if names is None:
            transport.makedirs(incoming)
            names = []
        return transport.free_bytes(incoming), upload.resume_point(names)

    try:
        free, offset = retry_on_drop(transport, retries, prepare)
        resumed_from = offset
        if free < size - offset + _FREE_MARGIN:
            raise DiskFull(
                f"device {device}: not enough disk for {label}: {_mb(free)} free in "
                f"{session.spool}, {_mb(size - offset)} needed; free space on the board or "
                "choose another spool"
            )
        hash_retry_used = False
        recovering = False
        while True:
            try:
                if recovering:  # after a drop: reconnect, then see what reached the device
                    transport.reconnect()
                    if kind == "model" and sha256 in session.agent.has([sha256]):
                        break  # the admit went through before the drop
                    offset = upload.resume_point()
                    recovering = False
                upload.started(offset)
                if progress and offset:
                    progress(device, label, offset, size)
                transport.upload(str(local_path), upload.part, offset=offset, progress=report)
                session.agent.admit(upload.part, sha256, kind=kind)
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
    except DiskFull:
        with contextlib.suppress(Exception):
            transport.remove(upload.part)  # a full disk needs its space back, not a part
        raise
    seconds = time.perf_counter() - start
    return DeployedFile(device, label, sha256, "sent", upload.sent, seconds, attempts, resumed_from)


def deploy_to_session(
    session: DeviceSession,
    models: list[LocalModel],
    progress: DeployProgress | None = None,
) -> list[DeployedFile]:
    """Models that the device lacks are sent one after another; present ones cost one `has`."""
    present = session.agent.has([m.sha256 for m in models])
    outcomes: list[DeployedFile] = []
    for model in models:
        if session.stopping.is_set():
            raise Stopped(f"device {session.device.name}: deploy stopped (interrupted)")
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
    parallel: int | None = None,
    connect: ConnectOptions | None = None,
    progress: DeployProgress | None = None,
) -> GroupResult[list[DeployedFile]]:
    """Deploy every model to every device, devices in parallel; per-device outcomes."""

    return each_session(
        devices,
        lambda session: deploy_to_session(session, models, progress),
        connect=connect,
        parallel=parallel,
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
        parallel=chosen.parallel,
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
