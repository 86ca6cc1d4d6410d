"""Run one function on many devices at once, keeping each device's result or error apart.

As fabric's `GroupResult`: a failure on one board is recorded against that board and
never hides the others; the caller decides the exit code from `failed`.

Each device's work runs in a daemon thread and the caller's thread waits in short slices, so
an interrupt (KeyboardInterrupt, or the command's cancel token, fleet/cancel.py) ends the
wait at once instead of after the slowest board: `stop` is set, the workers see it (and the
token) between their steps (an upload between chunks, keeping its part), they get a short
grace to wind down, and what they still have in flight is abandoned with the process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from edgeprune.errors import EdgepruneError
from edgeprune.fleet.cancel import CommandCancelled, Interrupted, active_token
from edgeprune.fleet.inventory import Device

T = TypeVar("T")
WAIT_SLICE_S = 0.2
STOP_GRACE_S = 3.0
"""After an interrupt, how long the workers get to reach a step boundary (an upload's next
chunk) before the caller stops waiting for them."""
MAX_PARALLEL = 64
"""Most devices one command may work on at once (`parallel`): each is a thread and a link."""
DEFAULT_PARALLEL_CAP = 32
"""Without `parallel`, every device at once, up to this many."""


def workers(parallel: int | None, devices: int) -> int:
    """Threads for `devices` devices: `parallel`, or all of them up to DEFAULT_PARALLEL_CAP."""
    limit = DEFAULT_PARALLEL_CAP if parallel is None else parallel
    return max(1, min(limit, devices))


@dataclass
class DeviceOutcome(Generic[T]):
    """One device's value, or the error that stopped it."""

    device: Device
    value: T | None = None
    error: BaseException | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def message(self) -> str:
        """One line for the user; a device name prefix is added when the error lacks one."""
        if self.error is None:
            return "ok"
        text = str(self.error).strip().splitlines()[0] if str(self.error).strip() else ""
        if not isinstance(self.error, EdgepruneError):
            text = f"unexpected {type(self.error).__name__}: {text}"
        prefix = f"device {self.device.name}"
        return text if text.startswith(prefix) else f"{prefix}: {text}"


class GroupResult(Generic[T]):
    """Outcomes in the order the devices were given."""

    def __init__(self, outcomes: list[DeviceOutcome[T]]) -> None:
        self.outcomes = outcomes

    def __iter__(self) -> Iterator[DeviceOutcome[T]]:
        return iter(self.outcomes)

    def __len__(self) -> int:
        return len(self.outcomes)

    def __getitem__(self, name: str) -> DeviceOutcome[T]:
        for outcome in self.outcomes:
            if outcome.device.name == name:
                return outcome
        raise KeyError(name)

    @property
    def succeeded(self) -> list[DeviceOutcome[T]]:
        return [o for o in self.outcomes if o.ok]

    @property
    def failed(self) -> list[DeviceOutcome[T]]:
        return [o for o in self.outcomes if not o.ok]


def fan_out(
    devices: list[Device],
    work: Callable[[Device], T],
    parallel: int | None = None,
    *,
    stop: threading.Event | None = None,
) -> GroupResult[T]:
    """`work(device)` for every device on at most `workers(parallel, len(devices))` threads.

    On an interrupt `stop` is set so the work winds down at its next step, devices not
    started are skipped, and `Interrupted` (a KeyboardInterrupt holding every device's outcome
    so far) is raised.
    """

    def one(device: Device) -> DeviceOutcome[T]:
        start = time.perf_counter()
        try:
            value = work(device)
        except Exception as exc:  # recorded per device; never lost, never re-raised here
            return DeviceOutcome(device, error=exc, seconds=time.perf_counter() - start)
        return DeviceOutcome(device, value=value, seconds=time.perf_counter() - start)

    token = active_token()
    outcomes: list[DeviceOutcome[T] | None] = [None] * len(devices)
    slots = threading.Semaphore(workers(parallel, len(devices)))
    worker_interrupts: list[KeyboardInterrupt] = []

    def runner(index: int, device: Device) -> None:
        with slots:
            if token.is_set:
                why = CommandCancelled("the command was interrupted before this device's turn")
                outcomes[index] = DeviceOutcome(device, error=why)
                return
            try:
                outcomes[index] = one(device)
            except BaseException as exc:  # a thread's end: record it, never lose it
                outcomes[index] = DeviceOutcome(device, error=exc)
                if isinstance(exc, KeyboardInterrupt):  # the whole command's, not one device's
                    worker_interrupts.append(exc)

    threads = [
        threading.Thread(
            target=runner, args=(i, d), daemon=True, name=f"edgeprune-{i}-{d.name}"[:60]
        )
        for i, d in enumerate(devices)
    ]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(WAIT_SLICE_S)
                token.check()
            if worker_interrupts:
                raise worker_interrupts[0]
    except (KeyboardInterrupt, CommandCancelled) as interrupt:
        if stop is not None:
            stop.set()
        deadline = time.monotonic() + STOP_GRACE_S
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        so_far = [
            outcome
            if outcome and not isinstance(outcome.error, KeyboardInterrupt)
            else DeviceOutcome(device, error=CommandCancelled("interrupted"))
            for device, outcome in zip(devices, outcomes, strict=True)
        ]
        raise Interrupted(GroupResult(so_far)) from interrupt
    return GroupResult([o for o in outcomes if o is not None])
