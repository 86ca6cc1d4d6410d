"""Training progress on stderr: a live bar in a terminal, one line per epoch in a log.

stdout stays for results (and `--json`'s one document); `--quiet` shows nothing.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from edgeprune.progress import ProgressSink, TrainingEvent, reporting
from edgeprune.text import percent


@contextlib.contextmanager
def training_progress(
    quiet: bool = False, stream: TextIO | None = None, *, live: bool = True
) -> Iterator[None]:
    """Show the progress of the training inside (nothing with `quiet`); `live=False` keeps
    to one line per epoch even on a terminal (when other progress lines share it)."""
    if quiet:
        with reporting(None):
            yield
        return
    with _own_stream(stream or sys.stderr) as out:
        if live and out.isatty():
            with _live_bar(out) as sink, reporting(sink):
                yield
            return
        with reporting(_epoch_lines(out)):
            yield


@contextlib.contextmanager
def _own_stream(out: TextIO) -> Iterator[TextIO]:
    """A private duplicate of `out`'s file descriptor, taken now: training runs inside
    `_tf.quiet_native_output`, which points fds 1 and 2 at a sink while TensorFlow talks,
    and the progress lines must still reach the user's stderr. A stream with no descriptor
    (a test's buffer, a notebook) is used as it is."""
    try:
        fd = out.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        yield out
        return
    out.flush()
    own = os.fdopen(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace")
    try:
        yield own
    finally:
        own.close()


def describe(event: TrainingEvent) -> str:
    """'gradual prune: epoch 3/8 · loss 0.2134 · accuracy 95.10 % · 12 s · ETA 20 s' (Keras'
    accuracy metrics in percent, like every accuracy shown)."""
    parts = [f"{event.stage}: epoch {event.epoch}/{event.epochs}"]
    if event.kind == "batch" and event.steps:
        parts[0] += f" (batch {event.step}/{event.steps})"
    for key, value in event.logs.items():
        if key in ("batch", "size"):
            continue
        shown = percent(value) if "accuracy" in key else f"{value:.4g}"
        parts.append(f"{key} {shown}")
    parts.append(f"{event.elapsed_s:.0f} s")
    eta = event.eta_s
    if eta is not None and not (event.kind == "epoch" and event.epoch == event.epochs):
        parts.append(f"ETA {_duration(eta)}")
    return " · ".join(parts)


def _epoch_lines(out: TextIO) -> ProgressSink:
    def sink(event: TrainingEvent) -> None:
        if event.kind == "epoch":
            print(describe(event), file=out, flush=True)

    return sink


@contextlib.contextmanager
def _live_bar(out: TextIO) -> Iterator[ProgressSink]:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(file=out, highlight=False)
    bars: dict[str, Any] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as progress:

        def sink(event: TrainingEvent) -> None:
            total = event.epochs * (event.steps or 1)
            done = (event.epoch - 1) * (event.steps or 1) + (
                event.step if event.steps else int(event.kind == "epoch")
            )
            status = describe(event).split(": ", 1)[-1]
            task = bars.get(event.stage)
            if task is None:
                task = bars[event.stage] = progress.add_task(event.stage, total=total, status="")
            progress.update(task, completed=done, total=total, status=status)

        yield sink


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(int(seconds), 60)
    return (
        f"{minutes} min {rest:02d} s"
        if minutes < 60
        else f"{minutes // 60} h {minutes % 60:02d} min"
    )
