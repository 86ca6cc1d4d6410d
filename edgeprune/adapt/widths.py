"""Groups and their widths: trace a model once, then keep masks for any widths asked.

NetAdapt changes one dependency group per proposal. The same keep mask (each group's
best-scoring channels by the channel criterion, as `edgeprune channels` ranks them) feeds
the latency prediction (`signatures`) and the real surgery (`prune_to_widths`), so what is
predicted is what is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeprune.channels.criteria import ChannelGroup, build_groups, score_groups
from edgeprune.channels.graph import ChannelGraph, trace_channels
from edgeprune.channels.surgery import rebuild_model


@dataclass
class TracedModel:
    """A model's channel graph, its groups (scored) and where each channel id sits."""

    model: Any
    graph: ChannelGraph
    groups: list[ChannelGroup]
    all_roots: np.ndarray  # union-find root of every channel id

    @property
    def widths(self) -> dict[str, int]:
        return {g.name: g.size for g in self.groups}

    def group(self, name: str) -> ChannelGroup:
        return next(g for g in self.groups if g.name == name)

    def prunable(self) -> list[ChannelGroup]:
        """Groups whose channels may go (not tied to an input, output or unknown layer)."""
        return [g for g in self.groups if g.fixed_reason is None]

    def keep_mask(self, widths: dict[str, int]) -> np.ndarray:
        """Per channel id: kept when its group keeps it at `widths` (others keep all)."""
        removed = []
        for name, width in widths.items():
            group = self.group(name)
            if width >= group.size:
                continue
            order = np.argsort(-group.scores, kind="stable")
            removed.append(group.roots[order[width:]])
        if not removed:
            return np.ones(len(self.all_roots), dtype=bool)
        return ~np.isin(self.all_roots, np.concatenate(removed))


def trace_model(model: Any, criterion: str = "l1") -> TracedModel:
    """Trace `model` into scored dependency groups (TAO's max normalizer, union votes)."""
    graph = trace_channels(model)
    groups = build_groups(graph)
    score_groups(graph, groups, criterion=criterion, normalizer="max", equalization="union")
    roots = graph.root_of(np.arange(len(graph.uf), dtype=np.int64))
    return TracedModel(model, graph, groups, roots)


def prune_to_widths(traced: TracedModel, widths: dict[str, int]) -> Any:
    """A new model with each named group cut to its width (best channels kept)."""
    new_model, _ = rebuild_model(traced.graph, traced.keep_mask(widths))
    return new_model


def candidate_widths(size: int, granularity: int, min_filters: int) -> list[int]:
    """Widths below `size`, largest first: multiples of `granularity`, at least `min_filters`."""
    floor = max(granularity, int(math.ceil(min_filters / granularity) * granularity))
    top = ((size - 1) // granularity) * granularity
    return list(range(top, floor - 1, -granularity))
