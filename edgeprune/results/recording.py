"""A run that stops early is stored as what it was: `interrupted` on Ctrl-C, `failed` with
the error on any other exception, so no command leaves an empty, unexplained run behind.

The caller records a normal end itself (`ResultsStore.finish_run`), since only it knows
whether that end was ok, failed or cached.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

INTERRUPTED = "interrupted (Ctrl-C) before it finished"


@contextlib.contextmanager
def ended_early_recorded(store: Any, run_id: int | Callable[[], int | None]) -> Iterator[None]:
    """Mark the run (an id, or a function giving it once it is known) interrupted or failed
    when the block raises; the exception goes on unchanged."""
    try:
        yield
    except BaseException as exc:
        found = run_id() if callable(run_id) else run_id
        if found is not None:
            interrupted = isinstance(exc, KeyboardInterrupt)
            status, error = (
                ("interrupted", INTERRUPTED) if interrupted else ("failed", one_line(exc))
            )
            with contextlib.suppress(Exception):  # the original error matters more
                store.finish_run(found, status, error)
        raise


def one_line(exc: BaseException) -> str:
    """The first line of an error's message, prefixed by its type when it is not ours."""
    from edgeprune.errors import EdgepruneError

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, EdgepruneError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def bench_outcome(
    device_errors: dict[str, str], rows: list[dict[str, Any]]
) -> tuple[str, str | None]:
    """(status, error) of a finished bench run: `failed` with the first failure (a device
    that failed, else a measurement that did), else `ok`."""
    failed_rows = [r for r in rows if r["status"] != "ok"]
    count = len(device_errors) + len(failed_rows)
    if not count:
        return "ok", None
    if device_errors:
        device, message = next(iter(device_errors.items()))
        first = f"{device}: {message}"
    else:
        row = failed_rows[0]
        first = f"{row['model_name']} on {row['device']}: {row.get('error') or row['status']}"
    return "failed", first if count == 1 else f"{count} failures; first: {first}"
