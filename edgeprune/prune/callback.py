"""`PruningCallback`: gradual magnitude pruning inside any `model.fit`.

Usage::

    from edgeprune.prune import PolynomialDecay, PruningCallback
    schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=1000, frequency=50)
    model.fit(x, y, epochs=5, callbacks=[PruningCallback(schedule)])

At each step the schedule selects, the masks are recomputed from the current magnitudes;
between those steps a `MaskConstraint` keeps pruned weights at exactly zero after every
optimizer update (in-graph). At the end of `fit` the constraints are removed, so the model
saves as a plain Keras model. The class is built on first use so that importing
`edgeprune.prune` does not import TensorFlow.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeprune import _tf
from edgeprune.prune.constraint import (
    forget_train_function,
    install_masks,
    mask_variables,
    strip_pruning,
)
from edgeprune.prune.options import PruneOptions
from edgeprune.prune.plan import PrunePlan, apply_masks
from edgeprune.prune.report import PruneReport
from edgeprune.prune.schedules import PruningSchedule

_CLASS: Any = None


def pruning_callback_class() -> Any:
    """The `PruningCallback` class (a `keras.callbacks.Callback`), defined on first call."""
    global _CLASS
    if _CLASS is None:
        _CLASS = _define(_tf.keras())
    return _CLASS


def _define(keras: Any) -> Any:
    class PruningCallback(keras.callbacks.Callback):
        """Gradual pruning during `fit`; after `fit`, `.report` says what was pruned.

        `step` counts optimizer steps from this callback's first `fit` and carries over to
        later `fit` calls, so one schedule can span several of them.
        """

        def __init__(
            self,
            schedule: PruningSchedule,
            *,
            options: PruneOptions | None = None,
            plan: PrunePlan | None = None,
            **keywords: Any,
        ) -> None:
            """`options` (or the `PruneOptions` selection fields as keywords) pick the kernels."""
            super().__init__()
            self.schedule = schedule
            self.options = PruneOptions.from_parts(
                options,
                {"sparsity": schedule.final_sparsity if options is None else None, **keywords},
            )
            self.plan = plan
            self.step = 0
            self.report: PruneReport | None = None
            self._mask_vars: list[Any] = []
            self._masks: list[np.ndarray] = []
            self._masked_step: tuple[Any, ...] | None = None
            self.thresholds: list[float] = []

        def on_train_begin(self, logs: Any = None) -> None:
            if self.plan is None:
                self.plan = PrunePlan.for_model(self.model, self.options)
            if not self._mask_vars:
                self._mask_vars = mask_variables(self.plan.targets)
                self._masks = [np.ones(t.shape, dtype=bool) for t in self.plan.targets]
            install_masks(self.plan.targets, self._mask_vars)
            # fit() made its train step before this hook; constraints are read when a step is
            # traced, so reuse our masked step from an earlier fit or trace a new one.
            if self._masked_step is not None and self._same_compile(self._masked_step[1:]):
                self.model.train_function = self._masked_step[0]
            else:
                self.model.make_train_function(force=True)

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            should_prune, sparsity = self.schedule(self.step)
            if should_prune:
                self.update_masks(sparsity)
            self.step += int(getattr(self.model, "steps_per_execution", 1) or 1)

        def on_train_end(self, logs: Any = None) -> None:
            self._masked_step = (self.model.train_function, *self._compile_key())
            strip_pruning(self.model)
            forget_train_function(self.model)
            if self.plan is not None:
                self.report = self.plan.report(self._masks)

        def _compile_key(self) -> tuple[Any, ...]:
            """What a traced train step depends on; a new compile() changes these objects."""
            model = self.model
            return (
                model.optimizer,
                getattr(model, "_compile_loss", None),
                getattr(model, "steps_per_execution", 1),
            )

        def _same_compile(self, key: tuple[Any, ...]) -> bool:
            optimizer, loss, steps = self._compile_key()
            return key[0] is optimizer and key[1] is loss and key[2] == steps

        def update_masks(self, sparsity: float) -> None:
            """Recompute every mask for `sparsity` from current magnitudes and zero the weights."""
            assert self.plan is not None
            weights = self.plan.current_weights()
            self._masks = self.plan.masks_at(sparsity, weights)
            # the magnitude cut per kernel, the smallest magnitude kept (as tfmot's threshold)
            self.thresholds = [
                float(np.abs(w)[m].min()) if m.any() else 0.0
                for w, m in zip(weights, self._masks, strict=True)
            ]
            for mask_var, mask in zip(self._mask_vars, self._masks, strict=True):
                mask_var.assign(mask.astype(mask_var.dtype))
            apply_masks(self.plan.targets, self._masks, weights)

    return PruningCallback
