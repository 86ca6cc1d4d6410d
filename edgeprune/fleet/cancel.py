"""What a host command does when it is interrupted: cancel the jobs it submitted, say so, exit 130.

One `CancelToken` per command. `interrupt_cancels()` makes it the active one and, in the main
thread, turns SIGINT and SIGTERM into it. Device workers (`fan_out` threads) register each job
before they submit it and drop it once its result is stored and acknowledged; they check the
token between steps and wait in slices, so they stop soon, and the main thread stops waiting
for them at once. It then asks each device's agent, in parallel over a fresh connection with
short timeouts, to cancel the jobs still registered (`AgentClient.cancel`), prints one line
per job and raises `Interrupted` (a KeyboardInterrupt: the CLI exits 130). A second signal
while cancelling exits at once, saying which jobs the devices may still be finishing.

The token also carries the command's notes (`note_once`), e.g. that a device is finishing a
job of an earlier command before this one's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from edgeprune.errors import EdgepruneError

if TYPE_CHECKING:
    from edgeprune.fleet.inventory import Device

Notify = Callable[[str], None]
"""notify(line): one line for the user (the CLI prints it on stderr)."""

CANCEL_WAIT_S = 3.0
"""How long an agent waits for a running job to stop before it answers "stopping"."""
CANCEL_TIMEOUT_S = 20.0
"""The most the host spends cancelling, all devices together (connect and answer)."""


class CommandCancelled(EdgepruneError):
    """A device's work stopped because the command was interrupted (nothing more is stored)."""

    exit_code = 130


class Interrupted(KeyboardInterrupt):
    """The command was interrupted (SIGINT/SIGTERM); its jobs on the devices were cancelled.

    Raised by `fan_out`, `group` holds what each device had done when it stopped (a
    `GroupResult`; a device not started has a CommandCancelled error).
    """

    def __init__(self, group: Any = None) -> None:
        super().__init__("interrupted")
        self.group = group


@dataclass(frozen=True)
class SubmittedJob:
    """A job this command put on a device, and how to reach that device's agent again."""

    device: Device
    python: str
    spool: str
    job_id: str
    what: str  # "model a.tflite" or "models a.tflite, b.tflite"


def _stderr_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class CancelToken:
    """Set once when the command is interrupted; thread-safe. Also the registry of the jobs
    each device got from this command and not yet handed back."""

    def __init__(self, notify: Notify | None = None, tracking: bool = True) -> None:
        self.notify: Notify = notify or _stderr_line
        self._tracking = tracking
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._jobs: dict[tuple[str, str], SubmittedJob] = {}
        self._noted: set[str] = set()

    @property
    def is_set(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        """The command is interrupted: every worker stops at its next check."""
        self._event.set()

    def check(self) -> None:
        """Raise CommandCancelled once the command was interrupted (workers: between steps)."""
        if self._event.is_set():
            raise CommandCancelled("the command was interrupted")

    def sleep(self, seconds: float) -> None:
        """time.sleep that ends (with CommandCancelled) as soon as the command is interrupted."""
        if self._event.wait(max(0.0, seconds)):
            self.check()

    def submitted(self, job: SubmittedJob) -> None:
        """Register `job` (before it is submitted: cancelling an id the device never got is
        harmless, missing one it got is not)."""
        if self._tracking:
            with self._lock:
                self._jobs[(job.device.name, job.job_id)] = job

    def finished(self, device_name: str, job_id: str) -> None:
        """The job's result is stored and acknowledged: nothing to cancel any more."""
        with self._lock:
            self._jobs.pop((device_name, job_id), None)

    def pending(self) -> list[SubmittedJob]:
        """Registered jobs, in the order they were submitted."""
        with self._lock:
            return list(self._jobs.values())

    def own_job_ids(self, device_name: str) -> set[str]:
        with self._lock:
            return {job_id for (name, job_id) in self._jobs if name == device_name}

    def note_once(self, key: str, line: str) -> None:
        """Tell the user `line`, once per `key` for this command."""
        with self._lock:
            if key in self._noted:
                return
            self._noted.add(key)
        self.notify(line)


_NEVER = CancelToken(tracking=False)
_active: CancelToken | None = None
_active_lock = threading.Lock()


def active_token() -> CancelToken:
    """The running command's token; outside `interrupt_cancels`, one that is never set."""
    return _active or _NEVER


@contextlib.contextmanager
def interrupt_cancels(notify: Notify | None = None) -> Iterator[CancelToken]:
    """Inside: SIGINT/SIGTERM (or KeyboardInterrupt) cancel this command's jobs on the devices,
    report each through `notify`, and end in `Interrupted`. Nested uses share the outer token."""
    global _active
    with _active_lock:
        outer = _active
        token = outer or CancelToken(notify)
        if outer is None:
            _active = token
        elif notify is not None and outer.notify is _stderr_line:
            outer.notify = notify
    if outer is not None:
        yield outer
        return
    previous = _install_handlers(_first_signal(token))
    try:
        yield token
    except (KeyboardInterrupt, CommandCancelled):
        token.cancel()
        _install_handlers(_second_signal(token))
        cancel_pending(token)
        raise Interrupted() from None
    finally:
        _restore_handlers(previous)
        with _active_lock:
            _active = None


def _first_signal(token: CancelToken) -> Callable[[int, FrameType | None], None]:
    def handler(_signum: int, _frame: FrameType | None) -> None:
        token.cancel()
        raise Interrupted()

    return handler


def _second_signal(token: CancelToken) -> Callable[[int, FrameType | None], None]:
    def handler(_signum: int, _frame: FrameType | None) -> None:
        left = token.pending()
        if not left:
            token.notify("interrupted again: exiting now")
        for job in left:
            token.notify(
                f"interrupted again: {job.device.name} may still be finishing job {job.job_id} "
                f"({job.what})"
            )
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(130)  # at once: the cancel calls in flight are abandoned, as the user asked

    return handler


SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _install_handlers(handler: Any) -> dict[int, Any] | None:
    """Our handler for SIGINT and SIGTERM (main thread only); the ones it replaced."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return {sig: signal.signal(sig, handler) for sig in SIGNALS}


def _restore_handlers(previous: dict[int, Any] | None) -> None:
    for sig, handler in (previous or {}).items():
        signal.signal(sig, handler)


def cancel_pending(token: CancelToken) -> None:
    """Cancel every registered job, each device in its own thread; one line per job."""
    by_device: dict[str, list[SubmittedJob]] = {}
    for job in token.pending():
        by_device.setdefault(job.device.name, []).append(job)
    lines: dict[str, list[str]] = {}

    def one(jobs: list[SubmittedJob]) -> None:
        lines[jobs[0].device.name] = _cancel_on_device(jobs, token)

    workers = [
        threading.Thread(target=one, args=(jobs,), daemon=True, name=f"cancel-{name}")
        for name, jobs in by_device.items()
    ]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + CANCEL_TIMEOUT_S
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    for name, jobs in by_device.items():
        for line in lines.get(name) or [
            f"{name}: no answer within {CANCEL_TIMEOUT_S:g} s; it may still be running job "
            f"{job.job_id} ({job.what})"
            for job in jobs
        ]:
            token.notify(line)


def _cancel_on_device(jobs: list[SubmittedJob], token: CancelToken) -> list[str]:
    """Cancel `jobs` (all on one device) over a fresh connection; a line per job. Jobs the
    device answered for are dropped from `token` (a later signal need not name them)."""
    from edgeprune.fleet.agent_client import AgentClient
    from edgeprune.fleet.session import open_transport

    device = jobs[0].device
    try:
        transport = open_transport(device)
        try:
            agent = AgentClient(transport, jobs[0].python, jobs[0].spool, command_timeout=30.0)
            records = agent.cancel([job.job_id for job in jobs])
        finally:
            transport.close()
    except Exception as exc:  # any failure: say so for each job, never hide the job
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "invalid choice" in reason:
            reason = "the agent on the board has no `cancel` (upgrade it: edgeprune agent install)"
        return [
            f"{device.name}: could not cancel job {job.job_id} ({job.what}): {reason}; the board "
            "may still be running it"
            for job in jobs
        ]
    by_id = {record.get("job_id"): record for record in records if isinstance(record, dict)}
    for job in jobs:
        if (by_id.get(job.job_id) or {}).get("outcome") in ("cancelled", "finished", "unknown"):
            token.finished(device.name, job.job_id)
    return [_line(device.name, job, by_id.get(job.job_id) or {}) for job in jobs]


def _line(device: str, job: SubmittedJob, record: dict[str, Any]) -> str:
    outcome = record.get("outcome")
    if outcome == "cancelled":
        return f"{device}: cancelled job {job.job_id} ({job.what})"
    if outcome == "stopping":
        return (
            f"{device}: cancelling job {job.job_id} ({job.what}); the board stops it within a "
            "second"
        )
    if outcome == "finished":
        return (
            f"{device}: job {job.job_id} ({job.what}) had already finished; its result stays "
            "on the board"
        )
    return f"{device}: job {job.job_id} ({job.what}) was not on the board; nothing to cancel"
