"""A pruning plan: validated options plus the selected kernels, and masks from current weights.

The one-shot API and the gradual callback share it: the plan is made (and every check
done) before any weight changes; masks are then computed as often as the caller needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeprune.prune.masks import kernel_masks
from edgeprune.prune.options import PruneOptions
from edgeprune.prune.policy import PruneTarget
from edgeprune.prune.report import PruneReport, measure_report
from edgeprune.prune.selection import Selection, select_kernels
from edgeprune.prune.unknown import UnknownLayer, unknown_layers


@dataclass
class PrunePlan:
    options: PruneOptions
    selection: Selection
    unknown: list[UnknownLayer] = field(default_factory=list)  # custom layers, left alone

    @classmethod
    def for_model(cls, model: Any, options: PruneOptions) -> PrunePlan:
        """Check the whole model and choose the kernels; raises UserError, changes nothing."""
        selection = select_kernels(
            model,
            policy=options.policy,
            include=options.include,
            exclude=options.exclude,
            include_types=options.include_types,
            min_params=options.min_params,
            pattern=options.pattern,
        )
        return cls(options, selection, unknown_layers(model))

    @property
    def targets(self) -> list[PruneTarget]:
        return self.selection.targets

    def current_weights(self) -> list[np.ndarray]:
        return [np.asarray(t.variable.numpy()) for t in self.targets]

    def masks_at(
        self, sparsity: float, weights: Sequence[np.ndarray] | None = None
    ) -> list[np.ndarray]:
        """Keep-masks (bool) reaching `sparsity` from the kernels' current magnitudes."""
        weights = self.current_weights() if weights is None else weights
        return kernel_masks(
            weights,
            [t.layout for t in self.targets],
            sparsity,
            scope=self.options.scope,
            max_layer_sparsity=self.options.cap,
            pattern=self.options.pattern,
        )

    def report(self, masks: Sequence[np.ndarray]) -> PruneReport:
        """Measure the kernels now; `masks` give each kernel's planned (target) sparsity."""
        planned = [1.0 - float(np.count_nonzero(m)) / m.size if m.size else 0.0 for m in masks]
        return measure_report(
            self.targets,
            planned,
            self.selection.skipped,
            sparsity=self.options.target,
            scope=self.options.scope,
            pattern=self.options.pattern,
            policy=self.options.policy_name,
            unknown=self.unknown,
        )


def apply_masks(
    targets: Sequence[PruneTarget],
    masks: Sequence[np.ndarray],
    weights: Sequence[np.ndarray] | None = None,
) -> None:
    """Zero the pruned weights in place (exact zeros, the kernel's own dtype).

    `weights` are the kernels' current values when the caller already read them.
    """
    if weights is None:
        weights = [np.asarray(t.variable.numpy()) for t in targets]
    for target, mask, values in zip(targets, masks, weights, strict=True):
        target.variable.assign(np.where(mask, values, np.zeros((), values.dtype)))
