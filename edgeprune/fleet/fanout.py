"""Run one function on many devices at once, keeping each device's result or error apart.

As fabric's `GroupResult`: a failure on one board is recorded against that board and
never hides the others; the caller decides the exit code from `failed`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from edgeprune.errors import EdgepruneError
from edgeprune.fleet.inventory import Device

T = TypeVar("T")
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


class Interrupted(KeyboardInterrupt):
    """Ctrl-C while devices were worked on; `group` holds what each had done when it stopped
    (the work of a device not yet started is a `not started` error)."""

    def __init__(self, group: GroupResult[object]) -> None:
        super().__init__("interrupted")
        self.group = group


class NotStarted(EdgepruneError):
    """The command was interrupted before this device's turn came."""


def fan_out(
    devices: list[Device],
    work: Callable[[Device], T],
    parallel: int | None = None,
    *,
    stop: threading.Event | None = None,
) -> GroupResult[T]:
    """`work(device)` for every device on at most `workers(parallel, len(devices))` threads.

    On Ctrl-C `stop` is set, so the work winds down at its next step (an upload keeps its
    part), devices not started are skipped, and `Interrupted` (a KeyboardInterrupt holding
    every device's outcome) is raised once the running work has returned.
    """

    def one(device: Device) -> DeviceOutcome[T]:
        start = time.perf_counter()
        try:
            value = work(device)
        except Exception as exc:  # recorded per device; never lost, never re-raised here
            return DeviceOutcome(device, error=exc, seconds=time.perf_counter() - start)
        return DeviceOutcome(device, value=value, seconds=time.perf_counter() - start)

    threads = workers(parallel, len(devices))
    if stop is None and threads == 1:
        return GroupResult([one(d) for d in devices])
    # with `stop`, even one device works on a thread: the main thread takes the Ctrl-C and
    # the work winds down at a step boundary, rather than being torn in the middle of a call
    pool = ThreadPoolExecutor(max_workers=threads)
    futures = [pool.submit(one, device) for device in devices]
    try:
        outcomes = [future.result() for future in futures]
    except KeyboardInterrupt as interrupt:
        if stop is not None:
            stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise Interrupted(GroupResult(_so_far(devices, futures))) from interrupt
    except BaseException:
        if stop is not None:
            stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return GroupResult(outcomes)


def _so_far(devices: list[Device], futures: list[Future[DeviceOutcome[T]]]) -> list[Any]:
    """Each device's outcome once the pool has wound down after an interrupt."""
    outcomes: list[Any] = []
    for device, future in zip(devices, futures, strict=True):
        if future.cancelled():
            outcomes.append(DeviceOutcome(device, error=NotStarted("not started (interrupted)")))
        else:
            outcomes.append(future.result())
    return outcomes
