"""Magnitude masks for a target sparsity, per kernel or across kernels (numpy only).

A *unit* is what a mask keeps or drops whole: one weight (unstructured) or one block
(``block:RxC``). Scores are |w| (or a block's mean |w|); the smallest go first. Counts are
exact (ties are broken by position), so the achieved sparsity is the target rounded to a
whole number of units.

Scopes decide how many units each kernel loses:

- ``local``: every kernel reaches the target;
- ``global``: one magnitude threshold over all kernels (large layers with small weights
  lose more);
- ``balanced``: the global threshold, but no kernel above ``max_layer_sparsity``; what a
  capped kernel cannot take is spread over the others by lowering their threshold, so the
  total still reaches the target (water-filling).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgeprune.errors import UserError
from edgeprune.prune.patterns import BlockPattern, KernelLayout, NMPattern, Pattern

SCOPES = ("local", "global", "balanced")


def smallest_units_mask(scores: np.ndarray, count: int) -> np.ndarray:
    """Keep-vector over `scores` with exactly `count` of the smallest set to False."""
    keep = np.ones(scores.size, dtype=bool)
    if count >= scores.size:
        keep[:] = False
    elif count > 0:
        keep[np.argpartition(scores, count - 1)[:count]] = False
    return keep


def magnitude_mask(weights: np.ndarray, sparsity: float) -> np.ndarray:
    """Keep-mask of `weights`' shape pruning round(sparsity * size) smallest |w|."""
    weights = np.asarray(weights)
    count = round(sparsity * weights.size)
    return smallest_units_mask(np.abs(weights).ravel(), count).reshape(weights.shape)


def prune_counts(
    scores: Sequence[np.ndarray],
    sparsity: float,
    scope: str = "local",
    max_layer_sparsity: float = 0.95,
) -> list[int]:
    """How many units each kernel loses so the whole reaches `sparsity` under `scope`."""
    sizes = [int(s.size) for s in scores]
    if scope == "local":
        return [round(sparsity * n) for n in sizes]
    total = round(sparsity * sum(sizes))
    if scope == "global":
        return _pick_smallest(scores, list(range(len(scores))), total)
    if scope == "balanced":
        return _balanced(scores, sizes, total, max_layer_sparsity)
    raise UserError(f"scope {scope!r} is not one of {', '.join(SCOPES)}")


def _pick_smallest(scores: Sequence[np.ndarray], members: list[int], count: int) -> list[int]:
    """Per-kernel counts of the `count` smallest units over the kernels in `members`."""
    counts = [0] * len(scores)
    if count <= 0 or not members:
        return counts
    pool = np.concatenate([scores[i] for i in members])
    count = min(count, pool.size)
    chosen = np.argpartition(pool, count - 1)[:count] if count < pool.size else np.arange(pool.size)
    offsets = np.cumsum([0] + [scores[i].size for i in members])
    owner = np.searchsorted(offsets, chosen, side="right") - 1
    for slot, n in enumerate(np.bincount(owner, minlength=len(members))):
        counts[members[slot]] = int(n)
    return counts


def _balanced(scores: Sequence[np.ndarray], sizes: list[int], total: int, cap: float) -> list[int]:
    caps = [int(np.floor(cap * n + 1e-9)) for n in sizes]
    capped: set[int] = set()
    while True:
        free = [i for i in range(len(scores)) if i not in capped]
        remaining = total - sum(caps[i] for i in capped)
        counts = _pick_smallest(scores, free, remaining)
        over = [i for i in free if counts[i] > caps[i]]
        if not over:
            for i in capped:
                counts[i] = caps[i]
            return counts
        capped.update(over)


def unit_scores(weights: np.ndarray, layout: KernelLayout, pattern: Pattern | None) -> np.ndarray:
    """What the magnitude criterion ranks for one kernel, flattened."""
    if isinstance(pattern, BlockPattern):
        return pattern.scores(weights, layout)
    return np.abs(np.asarray(weights)).ravel()


def kernel_masks(
    weights: Sequence[np.ndarray],
    layouts: Sequence[KernelLayout],
    sparsity: float,
    *,
    scope: str = "local",
    max_layer_sparsity: float = 0.95,
    pattern: Pattern | None = None,
) -> list[np.ndarray]:
    """Keep-masks (bool, one per kernel) reaching `sparsity` under `scope` and `pattern`."""
    if isinstance(pattern, NMPattern):
        # N:M fixes each kernel's share, so only the local scope has a meaning.
        return [
            pattern.mask(w, layout, sparsity) for w, layout in zip(weights, layouts, strict=True)
        ]
    scores = [unit_scores(w, layout, pattern) for w, layout in zip(weights, layouts, strict=True)]
    counts = prune_counts(scores, sparsity, scope, max_layer_sparsity)
    masks = []
    for w, layout, s, count in zip(weights, layouts, scores, counts, strict=True):
        keep = smallest_units_mask(s, count)
        if isinstance(pattern, BlockPattern):
            masks.append(pattern.expand(keep, np.shape(w), layout))
        else:
            masks.append(keep.reshape(np.shape(w)))
    return masks
