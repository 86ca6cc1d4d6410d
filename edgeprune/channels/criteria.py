"""Which channels go: filter norms, TAO's normalizers and equalization, granularity and minimums.

Scores follow NVIDIA TAO's `tlt-prune`: each layer's filter norms (L1 or L2 of the kernel,
bias ignored) are divided by the layer's max norm or by the L2 norm of all its norms; the
layers tied to one channel (by an Add, a Multiply, a depthwise conv) are merged with
`union` (max), `intersection` (min), `arithmetic_mean` or `geometric_mean`. A group keeps
the channels scoring above the threshold (or the best 1-ratio of them), at least
`min_filters`, rounded up to a multiple of `granularity`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from edgeprune.channels.graph import ChannelGraph
from edgeprune.channels.unionfind import UnionFind

CRITERIA = ("l1", "l2")
NORMALIZERS = ("max", "l2")
EQUALIZATIONS = ("union", "intersection", "arithmetic_mean", "geometric_mean")


@dataclass
class ChannelGroup:
    """Channels that must be removed together, and the layers whose filters they are."""

    roots: np.ndarray  # one union-find root per channel, in the first layer's filter order
    layers: list[str]  # layers whose filters (or per-channel weights) these channels are
    fixed_reason: str | None = None
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    keep: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    note: str | None = None

    @property
    def name(self) -> str:
        return self.layers[0]

    @property
    def size(self) -> int:
        return len(self.roots)

    @property
    def kept(self) -> int:
        return int(np.count_nonzero(self.keep))


def build_groups(graph: ChannelGraph) -> list[ChannelGroup]:
    """Group the filter channels of `graph`: channels of one layer, or tied to it, are one group."""
    uf = graph.uf
    root_of_source = {path: uf.roots(ids) for path, ids in graph.sources.items()}
    linker = UnionFind()
    linker.add(len(uf))
    for roots in root_of_source.values():
        for other in roots[1:].tolist():
            linker.union(int(roots[0]), other)
    fixed_roots: dict[int, str] = {}
    for item, reason in graph.fixed.items():
        fixed_roots.setdefault(uf.find(item), reason)

    members: dict[int, list[int]] = defaultdict(list)
    seen: set[int] = set()
    layers: dict[int, list[str]] = defaultdict(list)
    for path, roots in root_of_source.items():
        key = linker.find(int(roots[0])) if len(roots) else -1
        layers[key].append(path)
        for root in roots.tolist():
            if root not in seen:
                seen.add(root)
                members[key].append(root)
    for entry in graph.scores:  # depthwise convs vote on channels they do not create
        for key in {linker.find(r) for r in uf.roots(entry.ids).tolist()}:
            if key in layers and entry.path not in layers[key]:
                layers[key].append(entry.path)
    groups = []
    for key, member_roots in members.items():
        why = next((fixed_roots[r] for r in member_roots if r in fixed_roots), None)
        groups.append(ChannelGroup(np.asarray(member_roots, dtype=np.int64), layers[key], why))
    return groups


def score_groups(
    graph: ChannelGraph,
    groups: list[ChannelGroup],
    *,
    criterion: str,
    normalizer: str,
    equalization: str,
) -> None:
    """Set `group.scores`: each channel's normalized norm, equalized over the layers it ties."""
    votes: dict[int, list[float]] = defaultdict(list)
    for entry in graph.scores:
        norms = entry.l1 if criterion == "l1" else entry.l2
        normalized = normalize(norms, normalizer)
        for root, value in zip(
            graph.uf.roots(entry.ids).tolist(), normalized.tolist(), strict=True
        ):
            votes[root].append(value)
    for group in groups:
        group.scores = np.array(
            [equalize(votes.get(int(r), [0.0]), equalization) for r in group.roots]
        )


def normalize(norms: np.ndarray, normalizer: str) -> np.ndarray:
    """TAO's `-n`: divide by the layer's max norm ('max') or by the L2 norm of its norms ('l2')."""
    scale = float(np.max(norms)) if normalizer == "max" else float(np.sqrt(np.sum(norms**2)))
    return norms / scale if scale > 0 else np.zeros_like(norms)


def equalize(values: list[float], equalization: str) -> float:
    """TAO's `-eq`: merge the votes of the layers tied to one channel."""
    array = np.asarray(values, dtype=np.float64)
    if equalization == "union":
        return float(array.max())
    if equalization == "intersection":
        return float(array.min())
    if equalization == "arithmetic_mean":
        return float(array.mean())
    if np.any(array <= 0):  # geometric mean: any zero vote makes it zero
        return 0.0
    return float(np.exp(np.mean(np.log(array))))


def kept_count(
    size: int,
    desired: int,
    *,
    granularity: int,
    min_filters: int,
) -> int:
    """At least `min_filters` (or all there are), rounded up to a multiple of `granularity`."""
    count = max(desired, min(min_filters, size))
    count = int(math.ceil(count / granularity) * granularity) if count else 0
    return min(count, size)


def select_channels(
    groups: list[ChannelGroup],
    graph: ChannelGraph,
    *,
    ratio: float | None,
    threshold: float | None,
    granularity: int,
    min_filters: int,
) -> None:
    """Set `group.keep` for every group: the best-scoring channels it may keep."""
    for group in groups:
        size = group.size
        if group.fixed_reason is not None:
            group.keep = np.ones(size, dtype=bool)
            continue
        if ratio is not None:
            desired = size - round(ratio * size)
        else:
            desired = int(np.count_nonzero(group.scores > threshold))
        count = kept_count(size, desired, granularity=granularity, min_filters=min_filters)
        if desired == 0 and count < size:
            group.note = f"every channel scored below the threshold; kept {count} (--min-filters)"
        order = np.argsort(-group.scores, kind="stable")
        keep = np.zeros(size, dtype=bool)
        keep[order[:count]] = True
        group.keep = _keep_one_per_layer(group, graph, keep)


def _keep_one_per_layer(group: ChannelGroup, graph: ChannelGraph, keep: np.ndarray) -> np.ndarray:
    """A layer that would lose all its filters (a concat tied by an Add) keeps its best one."""
    position = {int(r): i for i, r in enumerate(group.roots)}
    for path in group.layers:
        ids = graph.sources.get(path)
        if ids is None or not len(ids):
            continue
        slots = [position[r] for r in graph.uf.roots(ids).tolist() if r in position]
        if slots and not keep[slots].any():
            keep[max(slots, key=lambda i: group.scores[i])] = True
    return keep
