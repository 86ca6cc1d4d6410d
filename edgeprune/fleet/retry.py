"""Retry a step that is safe to repeat after the link to a device drops.

Only `ConnectionLost` is retried (a refused host key, a failed login or a command that ran
too long is final). Between tries the connection is reopened, with exponential backoff, so
a board whose sshd restarts or whose Wi-Fi blips for a second is picked up again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from edgeprune.fleet.transport import ConnectionLost, Transport

T = TypeVar("T")


def backoff(attempt: int) -> float:
    """Seconds to wait before try number `attempt` + 1 (0.25, 0.5, 1, 2, 4, 4, ...)."""
    return min(0.25 * 2 ** (attempt - 1), 4.0)


def retry_on_drop(transport: Transport, retries: int, action: Callable[[], T]) -> T:
    """`action()`, tried again up to `retries` times when the connection drops."""
    attempt = 0
    while True:
        try:
            return action()
        except ConnectionLost:
            attempt += 1
            if attempt > retries:
                raise
        time.sleep(backoff(attempt))
        try:
            transport.reconnect()
        except ConnectionLost:
            if attempt >= retries:
                raise
