"""The NetAdapt loop (Yang et al., ECCV 2018) over measured lookup-table latencies.

Each iteration asks for a latency cut (a fraction of the current model's measured latency,
decaying per iteration, never below the target); for every dependency group, the largest
width whose predicted latency meets it becomes a proposal; the proposals are cut by the
channel criterion, fine-tuned briefly and scored on the validation data (through `map`,
so an executor may run them in parallel); the most accurate one is kept and measured whole
on the device. It stops when a kept model *measures* at or below the target (or when no group can
be cut further); the caller fine-tunes the result long-term.

The table decides which cut, the device decides when to stop: a proposal's latency is the
current model's measured latency plus the table's predicted change, so an error the table
makes on the whole model does not accumulate over iterations, and a target the prediction
meets but the board does not is not reported as met.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeprune.adapt.options import AdaptOptions
from edgeprune.adapt.proposal import run_proposal
from edgeprune.adapt.signatures import LayerSignature, layer_signatures
from edgeprune.adapt.table import Calibration, Latency, LatencyTable, Measure
from edgeprune.adapt.widths import TracedModel, candidate_widths, trace_model
from edgeprune.adapt.workdir import Workdir

MapFn = Callable[[Callable[[Any], Any], Sequence[Any]], list[Any]]
ModelMeasure = Callable[[Path, int], Latency]
"""measure_model(keras file, iteration) -> its whole-model latency on the device."""
Progress = Callable[[str], None]


def plain_map(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """Run the proposals one after the other in this process (what tests and `workers=1` use)."""
    return [fn(item) for item in items]


@dataclass
class Proposal:
    group: str
    width: int
    predicted_ms: float


@dataclass
class LoopOutcome:
    """Where the loop ended: the last kept model and why it stopped."""

    model_path: Path
    widths: dict[str, int]
    predicted_ms: float
    stop_reason: str
    at_minimum: list[str] = field(default_factory=list)


class Predictor:
    """Predicted latency = the calibration's line through the model's layers' table entries."""

    def __init__(
        self, table: LatencyTable, measure: Measure, quantize: str, calibration: Calibration
    ):
        self.table = table
        self.measure = measure
        self.quantize = quantize
        self.calibration = calibration

    def fill(self, signatures: Sequence[LayerSignature]) -> None:
        self.table.fill(signatures, self.measure, self.quantize)

    def predict(self, signatures: Sequence[LayerSignature]) -> float:
        """Never below one invoke: no model runs faster than an empty one."""
        predicted = self.calibration.predict(self.table.layer_sum(signatures))
        return max(predicted, self.table.overhead_ms)


def step_budget(
    options: AdaptOptions, iteration: int, current_ms: float, target_ms: float
) -> float:
    """The latency an iteration's proposals must reach: current - ΔR, never below the target."""
    cut = options.step_reduction * (options.step_decay**iteration) * current_ms
    return max(target_ms, current_ms - cut)


def monotone_in_width(predicted: dict[int, float]) -> dict[int, float]:
    """Each width's predicted latency raised to the largest one of any narrower width (a
    running max from the narrowest width up).

    One-layer entries are medians of a few dozen runs, so a wider layer can come out
    faster than a narrower one by noise alone; left so, the search below would take a wide
    width for a cut it does not make (the whole model measures no faster). Raised, a width
    meets a budget only when every narrower width of its group does too: removing filters
    never counts as making a model slower, and a cut is never claimed on one lucky entry.
    """
    out: dict[int, float] = {}
    running = float("-inf")
    for width in sorted(predicted):
        running = max(running, predicted[width])
        out[width] = running
    return out


def group_curves(
    traced: TracedModel, predictor: Predictor, options: AdaptOptions
) -> dict[str, dict[int, float]]:
    """For every prunable group that can be cut, its predicted latency at every candidate
    width (the others as they are), monotone in width (`monotone_in_width`); every missing
    entry is measured in one batch."""
    widths = {
        group.name: candidate_widths(group.size, options.granularity, options.min_filters)
        for group in traced.prunable()
    }
    signatures = {
        (name, width): layer_signatures(traced.graph, traced.keep_mask({name: width}))
        for name, candidates in widths.items()
        for width in candidates
    }
    predictor.fill([s for sigs in signatures.values() for s in sigs])
    return {
        name: monotone_in_width({w: predictor.predict(signatures[(name, w)]) for w in candidates})
        for name, candidates in widths.items()
        if candidates
    }


def propose(
    traced: TracedModel,
    predictor: Predictor,
    budget_ms: float,
    options: AdaptOptions,
    current_ms: float | None = None,
) -> tuple[list[Proposal], list[str]]:
    """For every prunable group, the largest width predicted (monotone in width) to meet
    `budget_ms`; when no group meets it alone and `current_ms` is given, each group's largest
    width predicted faster than that at all. Returns the proposals and the groups already at
    their minimum width."""
    curves = group_curves(traced, predictor, options)
    at_minimum = [g.name for g in traced.prunable() if g.name not in curves]
    found = _largest_widths(curves, lambda ms: ms <= budget_ms)
    if not found and current_ms is not None:
        found = _largest_widths(curves, lambda ms: ms < current_ms)
    return found, at_minimum


def _largest_widths(
    curves: dict[str, dict[int, float]], fits: Callable[[float], bool]
) -> list[Proposal]:
    """Per group, its largest width whose predicted latency `fits`."""
    found = []
    for name, curve in curves.items():
        fitting = [w for w, ms in curve.items() if fits(ms)]
        if fitting:
            width = max(fitting)
            found.append(Proposal(name, width, curve[width]))
    return found


def adapt_loop(
    source: Path,
    workdir: Workdir,
    options: AdaptOptions,
    *,
    predictor: Predictor,
    target_ms: float,
    measure_model: ModelMeasure,
    source_ms: float,
    map_fn: MapFn = plain_map,
    progress: Progress | None = None,
) -> LoopOutcome:
    """Iterate from `source` (measured at `source_ms`, in the conditions `measure_model`
    reports in), or the last finished iteration in `workdir`, towards `target_ms`."""
    from edgeprune.models import load_keras_model

    done = workdir.iterations
    current = workdir.root / done[-1]["model"] if done else source
    measured = float(done[-1]["measured"]["median_ms"]) if done else source_ms
    tell = progress or (lambda _: None)
    while True:
        iteration = len(workdir.iterations) + 1
        traced = trace_model(
            load_keras_model(current, custom_objects=options.custom_objects), options.criterion
        )
        signatures = layer_signatures(traced.graph, traced.keep_mask({}))
        predictor.fill(signatures)
        predicted = predictor.predict(signatures)
        minimum = [
            g.name
            for g in traced.prunable()
            if not candidate_widths(g.size, options.granularity, options.min_filters)
        ]
        if measured <= target_ms:
            return LoopOutcome(current, traced.widths, predicted, "target met", minimum)
        if iteration > options.max_iterations:
            return LoopOutcome(current, traced.widths, predicted, "max iterations", minimum)
        budget = step_budget(options, iteration - 1, measured, target_ms)
        # the budget in the table's terms: what the table's error on this model shifts
        offset = measured - predicted
        proposals, minimum = propose(
            traced, predictor, budget - offset, options, current_ms=predicted
        )
        if not proposals:
            reason = "no group can be cut further"
            return LoopOutcome(current, traced.widths, predicted, reason, minimum)
        tell(
            f"iteration {iteration}: {measured:.3f} ms measured → {budget:.3f} ms, "
            f"{len(proposals)} proposal(s)"
        )
        current, measured = _run_iteration(
            workdir, iteration, current, proposals, options, measure_model, map_fn, budget
        )


def _run_iteration(
    workdir: Workdir,
    iteration: int,
    current: Path,
    proposals: list[Proposal],
    options: AdaptOptions,
    measure_model: ModelMeasure,
    map_fn: MapFn,
    budget: float,
) -> tuple[Path, float]:
    """Run, keep and measure one iteration; returns the kept model and its measured ms."""
    scratch = workdir.scratch(iteration)
    assert options.data is not None
    items = [
        {
            "model": str(current),
            "group": p.group,
            "width": p.width,
            "output": str(scratch / f"p{index:02d}.keras"),
            "data": options.data,
            "criterion": options.criterion,
            "custom_objects": options.custom_objects,
            "epochs": options.short_epochs,
            "finetune": {k: v for k, v in options.finetune_keywords(1).items() if k != "epochs"},
        }
        for index, p in enumerate(proposals)
    ]
    results = map_fn(run_proposal, items)
    scored = [
        {**result, "predicted_ms": p.predicted_ms}
        for p, result in zip(proposals, results, strict=True)
    ]
    best = max(scored, key=lambda r: (r["top1"], -r["predicted_ms"]))
    folder = workdir.iteration_dir(iteration)
    kept = folder / "model.keras"
    shutil.move(best["path"], kept)
    measured = measure_model(kept, iteration)
    shutil.rmtree(scratch, ignore_errors=True)
    from edgeprune.models import load_keras_model

    widths = trace_model(
        load_keras_model(kept, custom_objects=options.custom_objects), options.criterion
    ).widths
    workdir.add_iteration(
        {
            "iteration": iteration,
            "model": str(kept.relative_to(workdir.root)),
            "group": best["group"],
            "width": best["width"],
            "widths": widths,
            "budget_ms": budget,  # in measured terms, as `measured` below
            "predicted_ms": best["predicted_ms"],
            "measured": measured.to_dict(),
            "top1": best["top1"],
            "proposals": [
                {k: r[k] for k in ("group", "width", "top1", "predicted_ms", "host")}
                for r in scored
            ],
        }
    )
    return kept, measured.median_ms
