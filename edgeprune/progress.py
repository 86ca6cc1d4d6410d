"""Training progress as events: library code reports, whoever listens shows.

Fine-tuning (gradual pruning, channel fine-tunes, recipe training stages) takes tens of
seconds; a caller that wants to show it installs a sink with `reporting(sink)` and every
`model.fit` inside gets `keras_callbacks(stage)`, which turns Keras' epoch and batch ends
into `TrainingEvent`s with the loss, the metrics and an ETA. With no sink installed nothing
is added to `fit`, so library users and tests see no output unless they ask for it.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from edgeprune import _tf


@dataclass(frozen=True)
class TrainingEvent:
    """Where a training stage is: `kind` is "batch" (within an epoch) or "epoch" (one ended)."""

    stage: str
    kind: str
    epoch: int  # 1-based
    epochs: int
    step: int  # batches done in this epoch
    steps: int | None  # batches per epoch, when Keras knows
    elapsed_s: float
    logs: dict[str, float] = field(default_factory=dict)

    @property
    def eta_s(self) -> float | None:
        """Seconds left, from the pace so far (None before the first batch)."""
        steps = self.steps or 0
        done = (self.epoch - 1) * steps + self.step if steps else self.epoch - 1
        total = self.epochs * steps if steps else self.epochs
        if self.kind == "epoch" and not steps:
            done = self.epoch
        if done <= 0 or self.elapsed_s <= 0:
            return None
        return self.elapsed_s / done * max(0, total - done)


ProgressSink = Callable[[TrainingEvent], None]

_SINK: contextvars.ContextVar[ProgressSink | None] = contextvars.ContextVar(
    "edgeprune_progress_sink", default=None
)


@contextlib.contextmanager
def reporting(sink: ProgressSink | None) -> Iterator[None]:
    """Send the training progress of everything inside to `sink` (None: silence)."""
    token = _SINK.set(sink)
    try:
        yield
    finally:
        _SINK.reset(token)


def keras_callbacks(stage: str) -> list[Any]:
    """The callbacks to give `model.fit` so its progress reaches the sink: [] when none listens."""
    sink = _SINK.get()
    if sink is None:
        return []
    return [_callback_class()(stage, sink)]


_CLASS: Any = None


def _callback_class() -> Any:
    """The Keras callback, defined on first use so importing this module loads no Keras."""
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    keras = _tf.keras()

    class ProgressCallback(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
        def __init__(self, stage: str, sink: ProgressSink) -> None:
            super().__init__()
            self.stage = stage
            self.sink = sink
            self.started = time.monotonic()
            self.epoch = 1
            self.epochs = 1
            self.steps: int | None = None
            self.last_batch_report = 0.0

        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            self.started = time.monotonic()
            params = self.params or {}
            self.epochs = int(params.get("epochs") or 1)
            steps = params.get("steps")
            self.steps = int(steps) if steps else None

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.epoch = epoch + 1

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            now = time.monotonic()
            if now - self.last_batch_report < 0.1:  # at most ten updates a second
                return
            self.last_batch_report = now
            self._send("batch", batch + 1, logs)

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self._send("epoch", self.steps or 0, logs)

        def _send(self, kind: str, step: int, logs: dict[str, Any] | None) -> None:
            self.sink(
                TrainingEvent(
                    stage=self.stage,
                    kind=kind,
                    epoch=self.epoch,
                    epochs=self.epochs,
                    step=step,
                    steps=self.steps,
                    elapsed_s=time.monotonic() - self.started,
                    logs=_numbers(logs),
                )
            )

    _CLASS = ProgressCallback
    return _CLASS


def _numbers(logs: dict[str, Any] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in (logs or {}).items():
        with contextlib.suppress(TypeError, ValueError):
            out[str(key)] = float(value)
    return out
