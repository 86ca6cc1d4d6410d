"""What a command running inside a session may ask of it: stop? and where progress goes.

Per call there is no context (every answer is "no" and progress goes nowhere); a session
(session.py) sets one per request thread. Kept apart from session.py so commands can ask
without importing the session loop.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Optional

from .errors import AgentError

Emit = Callable[[Dict[str, Any]], None]


class Interrupted(AgentError):
    """The host interrupted this request (or the session is closing): exit code 130."""

    exit_code = 130


class RequestContext:
    """One session request: its stop flag and its progress line writer."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.stop = threading.Event()
        self.drains = False  # serve --once: finishes its queue even when the host has left


_local = threading.local()


def current() -> Optional[RequestContext]:
    return getattr(_local, "context", None)


def enter(context: Optional[RequestContext]) -> None:
    """Make `context` this thread's (None: leave the request)."""
    _local.context = context


def stop_requested() -> bool:
    context = current()
    return context is not None and context.stop.is_set()


def emit_progress(document: Dict[str, Any]) -> None:
    """Send a progress document to the host, if a session is listening."""
    context = current()
    if context is not None:
        context.emit(document)
