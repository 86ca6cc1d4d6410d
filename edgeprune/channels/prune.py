"""`prune_channels`: the Python API behind `edgeprune channels`.

Check the options, trace the graph into dependency groups, score and select channels, then
rebuild a smaller dense model. Nothing is changed on the model that was passed in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from edgeprune.channels.criteria import (
    CRITERIA,
    EQUALIZATIONS,
    NORMALIZERS,
    build_groups,
    score_groups,
    select_channels,
)
from edgeprune.channels.graph import apply_exclusions, trace_channels
from edgeprune.channels.report import ChannelReport, GroupReport
from edgeprune.channels.surgery import rebuild_model
from edgeprune.errors import UserError
from edgeprune.keras_stats import model_stats

MAX_RATIO = 0.95
DEFAULT_THRESHOLD = 0.1  # TAO's -pth default


def prune_channels(
    model: Any,
    *,
    ratio: float | None = None,
    threshold: float | None = None,
    criterion: str = "l1",
    normalizer: str = "max",
    granularity: int = 8,
    min_filters: int = 16,
    exclude: Iterable[str] = (),
    equalization: str = "union",
) -> tuple[Any, ChannelReport]:
    """Remove whole filters from `model`; returns (smaller model, report).

    Give `ratio` (remove about that fraction of each group's filters, lowest scores first) or
    `threshold` (remove filters whose normalized norm is at or below it; the default when
    neither is given is 0.1, as TAO). Channels tied by element-wise ops or depthwise convs are
    removed together; model outputs, unknown layers and `exclude` globs keep their channels.
    """
    options = check_options(
        ratio=ratio,
        threshold=threshold,
        criterion=criterion,
        normalizer=normalizer,
        granularity=granularity,
        min_filters=min_filters,
        exclude=exclude,
        equalization=equalization,
    )
    graph = trace_channels(model)
    apply_exclusions(graph, tuple(options["exclude"]))
    groups = build_groups(graph)
    score_groups(
        graph, groups, criterion=criterion, normalizer=normalizer, equalization=equalization
    )
    select_channels(
        groups,
        graph,
        ratio=options["ratio"],
        threshold=options["threshold"],
        granularity=granularity,
        min_filters=min_filters,
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
        options=options,
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


def check_options(
    *,
    ratio: float | None,
    threshold: float | None,
    criterion: str,
    normalizer: str,
    granularity: int,
    min_filters: int,
    exclude: Iterable[str],
    equalization: str,
) -> dict[str, Any]:
    """Validate every option up front; returns them as the manifest records them."""
    if ratio is not None and threshold is not None:
        raise UserError("give --ratio or --threshold, not both")
    if ratio is not None:
        ratio = _number(ratio, "--ratio")
        if not 0.0 <= ratio <= MAX_RATIO:
            raise UserError(
                f"--ratio {ratio:g} is outside [0, {MAX_RATIO}]; give the fraction of prunable "
                "filters to remove, e.g. --ratio 0.5"
            )
    else:
        threshold = DEFAULT_THRESHOLD if threshold is None else _number(threshold, "--threshold")
        if threshold < 0:
            raise UserError(
                f"--threshold {threshold:g} is negative; normalized norms are in [0, 1], "
                "e.g. --threshold 0.1"
            )
    _choice(criterion, CRITERIA, "--criterion")
    _choice(normalizer, NORMALIZERS, "--normalizer")
    _choice(equalization, EQUALIZATIONS, "--equalization")
    for value, option in ((granularity, "--granularity"), (min_filters, "--min-filters")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise UserError(f"{option} must be a whole number >= 1, got {value!r}")
    if isinstance(exclude, str):
        exclude = [exclude]
    patterns = [str(p) for p in exclude]
    if any(not p.strip() for p in patterns):
        raise UserError(
            "--exclude got an empty name; give a layer name or glob, e.g. 'predictions'"
        )
    return {
        "ratio": ratio,
        "threshold": None if ratio is not None else threshold,
        "criterion": criterion,
        "normalizer": normalizer,
        "granularity": int(granularity),
        "min_filters": int(min_filters),
        "exclude": patterns,
        "equalization": equalization,
    }


def _number(value: Any, option: str) -> float:
    if isinstance(value, bool):
        raise UserError(f"{option} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{option} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise UserError(f"{option} must be a finite number, got {value!r}")
    return number


def _choice(value: Any, allowed: tuple[str, ...], option: str) -> None:
    if value not in allowed:
        raise UserError(f"{option} {value!r} is not one of: {', '.join(allowed)}")


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
