"""`prune_channels`: the Python API behind `edgeprune channels`.

Check the options, trace the graph into dependency groups, score and select channels, then
rebuild a smaller dense model. Nothing is changed on the model that was passed in.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from edgeprune.channels.criteria import build_groups, score_groups, select_channels
from edgeprune.channels.graph import apply_exclusions, trace_channels
from edgeprune.channels.options import ChannelOptions, check_selection
from edgeprune.channels.report import ChannelReport, GroupReport
from edgeprune.channels.surgery import rebuild_model
from edgeprune.keras_stats import model_stats


def check_options(**options: Any) -> dict[str, Any]:
    """Deprecated: use `ChannelOptions.create` (or `channels.options.check_selection`)."""
    warnings.warn(
        "edgeprune.channels.check_options is deprecated; use ChannelOptions.create",
        DeprecationWarning,
        stacklevel=2,
    )
    return check_selection(**options)


def prune_channels(
    model: Any,
    *,
    options: ChannelOptions | None = None,
    **keywords: Any,
) -> tuple[Any, ChannelReport]:
    """Remove whole filters from `model`; returns (smaller model, report).

    Give `options` or the `ChannelOptions` fields as keywords: `ratio` (remove about that
    fraction of each group's filters, lowest scores first) or `threshold` (remove filters
    whose normalized norm is at or below it; the default when neither is given is 0.1, as
    TAO). Channels tied by element-wise ops or depthwise convs are removed together; model
    outputs, unknown layers and `exclude` globs keep their channels.
    """
    chosen = ChannelOptions.from_parts(options, keywords)
    graph = trace_channels(model)
    apply_exclusions(graph, tuple(chosen.exclude))
    groups = build_groups(graph)
    score_groups(
        graph,
        groups,
        criterion=chosen.criterion,
        normalizer=chosen.normalizer,
        equalization=chosen.equalization,
    )
    select_channels(
        groups,
        graph,
        ratio=chosen.ratio,
        threshold=chosen.threshold,
        granularity=chosen.granularity,
        min_filters=chosen.min_filters,
    )
    removed_roots = np.concatenate(
        [g.roots[~g.keep] for g in groups] or [np.zeros(0, dtype=np.int64)]
    )
    all_roots = graph.root_of(np.arange(len(graph.uf), dtype=np.int64))
    keep_id = ~np.isin(all_roots, removed_roots)
    new_model, reused = rebuild_model(graph, keep_id)

    before, after = model_stats(model), model_stats(new_model)
    notes = [g.note for g in groups if g.note]
    if reused:
        notes.append(
            "layers shared with the original model (their config does not round-trip): "
            + ", ".join(reused)
        )
    report = ChannelReport(
        options=chosen.selection_dict(),
        groups=[_group_report(g) for g in groups],
        layers=_layer_counts(graph, keep_id),
        skipped_layers=[
            {"name": s.path, "class_name": s.class_name, "reason": s.reason, "unknown": s.unknown}
            for s in graph.skipped
        ],
        params_before=before.params,
        params_after=after.params,
        macs_before=before.macs,
        macs_after=after.macs,
        notes=notes,
    )
    if not any(g.status == "pruned" for g in report.groups):
        report.notes.append("no filter was removed")
    return new_model, report


def _group_report(group: Any) -> GroupReport:
    if group.fixed_reason is not None:
        status = "fixed"
    elif group.kept < group.size:
        status = "pruned"
    else:
        status = "unchanged"
    return GroupReport(
        name=group.name,
        layers=list(group.layers),
        filters_before=group.size,
        filters_after=group.kept,
        status=status,
        reason=group.fixed_reason or group.note,
    )


def _layer_counts(graph: Any, keep_id: np.ndarray) -> dict[str, dict[str, int]]:
    """Filters before/after for every layer that creates filters."""
    return {
        path: {"before": len(ids), "after": int(np.count_nonzero(keep_id[ids]))}
        for path, ids in graph.sources.items()
    }
