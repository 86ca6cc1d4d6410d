"""One-shot (post-training) magnitude pruning: `prune_model`."""

from __future__ import annotations

from typing import Any

from edgeprune.prune.options import PruneOptions
from edgeprune.prune.plan import PrunePlan, apply_masks
from edgeprune.prune.report import PruneReport


def prune_model(
    model: Any,
    sparsity: float | None = None,
    *,
    options: PruneOptions | None = None,
    **keywords: Any,
) -> PruneReport:
    """Zero the smallest-magnitude kernel weights of `model` in place; return what was done.

    Give `options` or the `PruneOptions` fields as keywords (`scope="global"`). The model
    itself is changed (no copy, no wrapper layers) and stays a plain Keras model, so the
    function returns only the report; keep a reference to the model you passed.
    `sparsity` may be None only with an N:M pattern (which fixes it at 1-N/M). Every check
    (options, policy, include/exclude globs, pattern fit) runs before any weight changes.
    """
    chosen = PruneOptions.from_parts(options, {"sparsity": sparsity, **keywords})
    return prune_with_options(model, chosen)


def prune_with_options(model: Any, options: PruneOptions) -> PruneReport:
    """`prune_model` for already-validated options (what the CLI calls)."""
    plan = PrunePlan.for_model(model, options)
    masks = plan.masks_at(options.target)
    apply_masks(plan.targets, masks)
    return plan.report(masks)
