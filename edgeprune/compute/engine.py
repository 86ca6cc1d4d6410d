"""Which executor the current task runs in, so `board_slot` picks the matching lock.

The executor wraps every task in `call_in_engine`, which sets a context variable for the
task's duration; code outside any executor sees `None` (a host file lock is used then).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Engine:
    """`kind` is "local" (a process pool on this host) or "dask"; `lock_dir` holds the
    host's board lock files (local only)."""

    kind: str
    lock_dir: str | None = None


CURRENT: contextvars.ContextVar[Engine | None] = contextvars.ContextVar(
    "edgeprune_compute_engine", default=None
)


def current_engine() -> Engine | None:
    return CURRENT.get()


def call_in_engine(engine: Engine, fn: Callable[[Any], Any], item: Any) -> Any:
    """Run `fn(item)` with `engine` as the current engine (top level: picklable)."""
    token = CURRENT.set(engine)
    try:
        return fn(item)
    finally:
        CURRENT.reset(token)
