"""One-shot (post-training) magnitude pruning: `prune_model`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edgeprune.prune.options import DEFAULT_MAX_LAYER_SPARSITY, PruneOptions
from edgeprune.prune.patterns import Pattern
from edgeprune.prune.plan import PrunePlan, apply_masks
from edgeprune.prune.policy import PrunePolicy
from edgeprune.prune.report import PruneReport
from edgeprune.prune.selection import DEFAULT_MIN_PARAMS


def prune_model(
    model: Any,
    sparsity: float | None,
    *,
    scope: str = "local",
    max_layer_sparsity: float = DEFAULT_MAX_LAYER_SPARSITY,
    include: Sequence[str] | str | None = None,
    exclude: Sequence[str] | str | None = None,
    min_params: int = DEFAULT_MIN_PARAMS,
    pattern: str | Pattern | None = None,
    policy: str | PrunePolicy = "all",
) -> PruneReport:
    """Zero the smallest-magnitude kernel weights of `model` in place; return what was done.

    The model itself is changed (no copy, no wrapper layers) and stays a plain Keras model,
    so the function returns only the report; keep a reference to the model you passed.
    `sparsity` may be None only with an N:M pattern (which fixes it at 1-N/M). Every check
    (options, policy, include/exclude globs, pattern fit) runs before any weight changes.
    """
    options = PruneOptions.create(
        sparsity,
        scope=scope,
        max_layer_sparsity=max_layer_sparsity,
        include=include,
        exclude=exclude,
        min_params=min_params,
        pattern=pattern,
        policy=policy,
    )
    return prune_with_options(model, options)


def prune_with_options(model: Any, options: PruneOptions) -> PruneReport:
    """`prune_model` for already-validated options (what the CLI calls)."""
    plan = PrunePlan.for_model(model, options)
    masks = plan.masks_at(options.sparsity)
    apply_masks(plan.targets, masks)
    return plan.report(masks)
