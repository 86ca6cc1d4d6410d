"""A running job's progress (phase, member, runs done of total) in `progress/<job>.json`.

The runner writes it (at most a few times a second, but always the last run of a phase;
temp file + rename, no fsync: it is a hint, lost harmlessly in a power cut); `wait` and
`status` read it. One small file per job, removed when its result is acknowledged, so a
`wait` that finds the result still hands over the final count.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any, Callable, Dict, Optional

from .errors import AgentError
from .safe_files import read_capped

MIN_INTERVAL_S = 0.25
MAX_PROGRESS_BYTES = 1 << 14

Report = Callable[..., None]
"""report(phase, done=, total=, member=): what the runner says about its progress."""


def no_report(phase: str, **details: Any) -> None:
    """Progress goes nowhere (a `run` on the command line)."""


def progress_path(spool_root: str, job_id: str) -> str:
    return os.path.join(spool_root, "progress", f"{job_id}.json")


class ProgressFile:
    """The progress of one job, written atomically and throttled (phase changes at once)."""

    def __init__(self, spool_root: str, job_id: str) -> None:
        self.path = progress_path(spool_root, job_id)
        self.job_id = job_id
        self._last_write = 0.0
        self._last_phase: Optional[str] = None

    def __call__(self, phase: str, **details: Any) -> None:
        now = time.monotonic()
        last_run = details.get("done") is not None and details.get("done") == details.get("total")
        if phase == self._last_phase and now - self._last_write < MIN_INTERVAL_S and not last_run:
            return
        self._last_write, self._last_phase = now, phase
        document = {"job_id": self.job_id, "phase": phase, "updated_at": round(time.time(), 3)}
        document.update({k: v for k, v in details.items() if v is not None})
        directory = os.path.dirname(self.path)
        try:
            import tempfile

            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(document, sort_keys=True))
            os.replace(tmp, self.path)
        except OSError:  # a full disk or a spool without progress/: progress is only a hint
            with contextlib.suppress(OSError, UnboundLocalError):
                os.unlink(tmp)

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def read_progress(spool_root: str, job_id: str) -> Optional[Dict[str, Any]]:
    """The job's last progress document, or None (none written, or unreadable)."""
    try:
        data = read_capped(progress_path(spool_root, job_id), MAX_PROGRESS_BYTES, root=spool_root)
        document = json.loads(data.decode("utf-8"))
    except (OSError, ValueError, AgentError):
        return None
    return document if isinstance(document, dict) else None
