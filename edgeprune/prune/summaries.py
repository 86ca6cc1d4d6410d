"""TensorBoard logs of gradual pruning: Keras' own writer, plus what pruning changes per step.

As tfmot's `PruningSummaries` does, the callback is Keras' `TensorBoard` (loss and metrics
per epoch, written the way TensorBoard expects) and adds, at every mask update, the target
sparsity of the schedule and, per kernel, its sparsity and its magnitude threshold (the
smallest magnitude the last mask update kept, as tfmot's threshold). Built on first use so importing this module loads no
TensorFlow.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeprune import _tf

_CLASS: Any = None


def pruning_summaries(log_dir: str, pruning: Any) -> Any:
    """A TensorBoard callback writing into `log_dir`, reading masks from `pruning`
    (the `PruningCallback` of the same `fit`; list it before this one)."""
    global _CLASS
    if _CLASS is None:
        _CLASS = _define(_tf.keras(), _tf.tf())
    return _CLASS(log_dir, pruning)


def _define(keras: Any, tf: Any) -> Any:
    class PruningSummaries(keras.callbacks.TensorBoard):  # type: ignore[misc,name-defined]
        def __init__(self, log_dir: str, pruning: Any) -> None:
            super().__init__(log_dir=log_dir, write_graph=False, update_freq="epoch")
            self.pruning = pruning
            self._written_step = -1

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            super().on_train_batch_end(batch, logs)
            should_prune, _ = self.pruning.schedule(max(0, self.pruning.step - 1))
            if should_prune:
                self._write_pruning()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            super().on_epoch_end(epoch, logs)
            self._write_pruning()

        def _write_pruning(self) -> None:
            step = int(self.pruning.step)
            plan = self.pruning.plan
            if step == self._written_step or plan is None:
                return
            self._written_step = step
            _, target = self.pruning.schedule(max(0, step - 1))
            with self._train_writer.as_default():
                tf.summary.scalar("pruning/target_sparsity", float(target), step=step)
                thresholds = self.pruning.thresholds or [0.0] * len(plan.targets)
                for kernel, mask, threshold in zip(
                    plan.targets, self.pruning._masks, thresholds, strict=True
                ):
                    name = kernel.label.replace(":", "/")
                    sparsity = 1.0 - float(np.count_nonzero(mask)) / max(1, mask.size)
                    tf.summary.scalar(f"sparsity/{name}", sparsity, step=step)
                    tf.summary.scalar(f"threshold/{name}", threshold, step=step)
            self._train_writer.flush()

    return PruningSummaries
