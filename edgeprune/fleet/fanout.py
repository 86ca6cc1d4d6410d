"""Run one function on many devices at once, keeping each device's result or error apart.

As fabric's `GroupResult`: a failure on one board is recorded against that board and
never hides the others; the caller decides the exit code from `failed`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from edgeprune.errors import EdgepruneError
from edgeprune.fleet.inventory import Device

T = TypeVar("T")
DEFAULT_CONCURRENCY = 8


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
    concurrency: int = DEFAULT_CONCURRENCY,
) -> GroupResult[T]:
    """`work(device)` for every device on at most `concurrency` threads."""

    def one(device: Device) -> DeviceOutcome[T]:
        start = time.perf_counter()
        try:
            value = work(device)
        except Exception as exc:  # recorded per device; never lost, never re-raised here
            return DeviceOutcome(device, error=exc, seconds=time.perf_counter() - start)
        return DeviceOutcome(device, value=value, seconds=time.perf_counter() - start)

    if len(devices) <= 1 or concurrency <= 1:
        return GroupResult([one(d) for d in devices])
    with ThreadPoolExecutor(max_workers=min(concurrency, len(devices))) as pool:
        return GroupResult(list(pool.map(one, devices)))
