"""Keep pruned weights at exactly zero during training, in-graph.

Keras 3 optimizers apply ``variable.constraint`` right after every update, inside the
compiled train step. A `MaskConstraint` multiplies the kernel by a non-trainable mask
variable, so masking costs one multiply per kernel per step and no Python per batch; the
mask variable is updated (rarely) from Python when the schedule says so.

Constraints live on the variables only (a layer's config keeps its own
``kernel_constraint``), and `strip_pruning` removes them, so a saved model is plain Keras.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgeprune import _tf
from edgeprune.prune.policy import PruneTarget


class MaskConstraint:
    """`w -> original(w) * mask`: the layer's own constraint first, then the pruning mask."""

    def __init__(self, mask: Any, original: Any = None) -> None:
        self.mask = mask
        self.original = original

    def __call__(self, weights: Any) -> Any:
        ops = _tf.keras().ops
        if self.original is not None:
            weights = self.original(weights)
        return ops.multiply(weights, self.mask)


def mask_variables(targets: Sequence[PruneTarget]) -> list[Any]:
    """One all-ones, non-trainable mask variable per kernel (not tracked by any layer)."""
    keras = _tf.keras()
    return [
        keras.Variable(
            np.ones(t.shape, dtype=t.variable.dtype),
            trainable=False,
            name=f"prune_mask_{i}",
        )
        for i, t in enumerate(targets)
    ]


def install_masks(targets: Sequence[PruneTarget], masks: Sequence[Any]) -> None:
    """Put a MaskConstraint on every target kernel (idempotent) and zero what is masked now."""
    for target, mask in zip(targets, masks, strict=True):
        current = target.variable.constraint
        if isinstance(current, MaskConstraint):
            current.mask = mask
        else:
            target.variable.constraint = MaskConstraint(mask, current)
        target.variable.assign(target.variable * mask)


def strip_pruning(model: Any) -> int:
    """Remove edgeprune's constraints from `model` (zeroing masked weights first).

    Returns how many kernels were stripped. Also drops the model's compiled train step,
    which had the masks built in, so a later `fit` trains without them.
    """
    stripped = 0
    for variable in model.variables:
        constraint = getattr(variable, "constraint", None)
        if isinstance(constraint, MaskConstraint):
            variable.assign(variable * constraint.mask)
            variable.constraint = constraint.original
            stripped += 1
    if stripped:
        forget_train_function(model)
    return stripped


def forget_train_function(model: Any) -> None:
    """Make the next `fit` trace a fresh train step (constraints are read at trace time)."""
    if hasattr(model, "train_function"):
        model.train_function = None
