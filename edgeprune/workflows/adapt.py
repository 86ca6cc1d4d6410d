"""`adapt` file to file: measure the board, then prune to a latency target with NetAdapt.

Everything that can be wrong is found before any training: options, the input model, the
data (it must fit the model), the device (the input model is measured on it first, which
also gives the runtime the lookup table is keyed by). Then the loop runs in `OUT.adapt/`
(finished iterations kept, a re-run resumes), the result is fine-tuned long-term, saved
with its manifest, and measured side by side with the input model.

Every job on the device carries the input model as its reference, and every latency is
taken in the conditions of the first job (the device check): a job's medians times the
input model's median in the first job over its median in this job. Load that comes and
goes between jobs (a busy host, a warm board) then cancels out of the table's entries, the
calibration and the measured iterations alike.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edgeprune.adapt.calibrate import SettledCalibration, settle_calibration
from edgeprune.adapt.netadapt import MapFn, Predictor, adapt_loop
from edgeprune.adapt.options import AdaptOptions
from edgeprune.adapt.plot import write_trajectory_svg
from edgeprune.adapt.signatures import layer_signatures
from edgeprune.adapt.table import Calibration, Latency, LatencyTable
from edgeprune.adapt.widths import TracedModel, prune_to_widths, trace_model
from edgeprune.adapt.workdir import Workdir, workdir_for
from edgeprune.artifacts import save_keras_artifact
from edgeprune.channels.pipeline import load_task_data
from edgeprune.compute import board_slot
from edgeprune.errors import DeviceError, UserError
from edgeprune.files import check_input_path, check_output_path
from edgeprune.fleet.artifacts import as_local_models
from edgeprune.fleet.inventory import Device
from edgeprune.fleet.options import BenchOptions
from edgeprune.results.store import ResultsStore
from edgeprune.results.tables import summary_rows
from edgeprune.workflows.bench import DEFAULT_STORE, open_store, record_bench, resolve_devices

TABLE_COMMAND = "adapt-table"
MODEL_COMMAND = "adapt-model"
TABLE_BENCH = {"warmup": 3, "round_runs": 5, "rounds_per_process": 100}
MODEL_BENCH = {"warmup": 5, "round_runs": 10, "rounds_per_process": 2}
ENTRY_STATISTIC = "fastest"
"""What a table entry is of its runs (`DeviceMeter.table`); part of the table's context, so
entries of another statistic (the medians earlier versions kept) are never mixed with these."""
CALIBRATION_FRACTIONS = (0.875, 0.75, 0.625, 0.5)
"""Uniform cuts of the input model measured beside it to fit the table's calibration (each
a few whole-model runs in the first job; more points than a line needs, so one width that
happens to run fast or slow on the device does not set the slope)."""
IDENTITY_EXCLUDES = frozenset(
    {
        "long_epochs",
        "cluster",
        "table_remeasures",
        "runs",
        "max_iterations",
        "distill",
        "temperature",
        "alpha",
    }
)
"""Options that do not change the iterations already finished (a re-run may change them)."""


class MeterSettings(Protocol):
    """What measuring on a device and keying the table take (`AdaptOptions` has them;
    quant-report's per-layer latency passes its own)."""

    @property
    def threads(self) -> int: ...
    @property
    def quantize(self) -> str: ...
    @property
    def table_runs(self) -> int: ...
    @property
    def runs(self) -> int: ...


@dataclass
class AdaptReport:
    """What `edgeprune adapt --json` prints."""

    output: str
    manifest: str
    workdir: str
    device: str
    target: dict[str, Any]
    baseline: dict[str, Any]
    final: dict[str, Any]
    accuracy: dict[str, Any]
    groups: list[dict[str, Any]]
    iterations: list[dict[str, Any]]
    table: dict[str, Any]
    validation: dict[str, Any]
    stop_reason: str
    target_met: bool
    plot: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DeviceMeter:
    """Measures .tflite files on one device into the results store (table and whole models)."""

    def __init__(
        self,
        device: Device,
        store: ResultsStore,
        options: MeterSettings,
        slot: Callable[[str], contextlib.AbstractContextManager[Any]] | None = None,
    ):
        self.device = device
        self.store = store
        self.options = options
        self.slot = slot or (lambda _name: contextlib.nullcontext())
        self.jobs = {TABLE_COMMAND: 0, MODEL_COMMAND: 0}
        self.runtime: dict[str, Any] = {}
        self.reference: Path | None = None
        self.reference_ms = 0.0
        self.reference_fastest_ms = 0.0

    def set_reference(self, path: Path, median_ms: float, fastest_ms: float) -> None:
        """From now on every job also measures `path`, whose median was `median_ms` (and
        fastest run `fastest_ms`) in the reference job; latencies come back scaled into that
        job's conditions."""
        self.reference, self.reference_ms, self.reference_fastest_ms = path, median_ms, fastest_ms

    def table(self, paths: Sequence[Path]) -> list[Latency]:
        """The table's entries of one-layer models: each one's fastest run, in the reference
        conditions (the reference's fastest run over its fastest run in this job).

        Not the median: an entry's runs all come from one process on the device (a fresh
        process per entry round would cost more than the runs), and a process that lands
        beside a neighbour's load runs slow throughout, so its median carries that load
        (emulated Pi 4 runs behind a busy host: whole-model predictions 14 % off with
        medians, 1 % with fastest runs, docs/architecture.md). Load only adds time; the
        fastest run is what the layer costs. Whole models, whose several processes the
        agent resamples, keep their medians: the calibration's line maps the one to the
        other."""
        rows, factor = self._referenced(
            paths, TABLE_COMMAND, self.options.table_runs, TABLE_BENCH, by="min_ms"
        )
        return [fastest_of(row).scaled(factor) for row in rows]

    def model(self, path: Path) -> Latency:
        """A whole model's latency in the reference conditions, measured beside the reference
        (`to_dict` also gives the raw median and the speed-up over the reference)."""
        rows, factor = self._referenced([path], MODEL_COMMAND, self.options.runs, MODEL_BENCH)
        return referenced_latency(rows[0], factor)

    def models(self, paths: Sequence[Path]) -> list[dict[str, Any]]:
        """Summary rows of whole models, interleaved (speed-ups against the first)."""
        return self._rows(paths, MODEL_COMMAND, self.options.runs, MODEL_BENCH)

    def _referenced(
        self,
        paths: Sequence[Path],
        command: str,
        runs: int,
        extra: dict[str, Any],
        by: str = "p50_ms",
    ) -> tuple[list[dict[str, Any]], float]:
        """Rows of `paths` measured after the reference in one job, and the factor that takes
        this job's latencies into the reference job's conditions (1 without a reference): the
        reference's `by` (p50_ms, or min_ms for fastest runs) there over its `by` here."""
        if self.reference is None:
            return self._rows(paths, command, runs, extra), 1.0
        rows = self._rows([self.reference, *paths], command, runs, extra)
        there = self.reference_fastest_ms if by == "min_ms" else self.reference_ms
        return rows[1:], there / float(rows[0][by])

    def _rows(
        self, paths: Sequence[Path], command: str, runs: int, extra: dict[str, Any]
    ) -> list[dict[str, Any]]:
        from edgeprune.fleet.remote_bench import plan_jobs

        models = as_local_models(list(paths))
        bench = BenchOptions.create(threads=[self.options.threads], runs=runs, **extra)
        with self.slot(self.device.name):
            run_id, group = record_bench(models, [self.device], bench, self.store, command=command)
        self.jobs[command] += len(plan_jobs(models, True))
        failed = group.failed
        if failed:
            raise DeviceError(
                f"device {self.device.name!r} cannot be measured: {failed[0].message}"
            )
        rows = summary_rows(
            self.store.measurements([run_id], with_json=True), baseline_sha256=models[0].sha256
        )
        by_sha = {row["model_sha256"]: row for row in rows}
        out = []
        for model in (as_local_models([p])[0] for p in paths):
            row = by_sha.get(model.sha256)
            if row is None or row["status"] != "ok":
                why = row["error"] if row else "no result"
                raise DeviceError(
                    f"measuring {model.name} on {self.device.name!r} failed: {why}; check the "
                    f"device with `edgeprune bench {model.path} --device {self.device.name}`"
                )
            out.append(row)
        self.runtime = {
            "runtime": rows[0]["runtime"],
            "runtime_version": rows[0]["runtime_version"],
        }
        return out


def latency_of(row: dict[str, Any]) -> Latency:
    ci = row.get("p50_ci_ms") or [None, None]
    return Latency(float(row["p50_ms"]), ci[0], ci[1], int(row["runs"]))


def fastest_of(row: dict[str, Any]) -> Latency:
    """A row's fastest run as a table entry's latency (an extreme has no median's interval)."""
    return Latency(float(row["min_ms"]), None, None, int(row["runs"]))


@dataclass(frozen=True)
class ReferencedLatency(Latency):
    """A whole model's latency in the reference conditions, with what was measured."""

    raw_median_ms: float = 0.0
    speedup: float | None = None
    speedup_ci: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "raw_median_ms": self.raw_median_ms,
            "speedup": self.speedup,
            "speedup_ci": self.speedup_ci,
        }


def referenced_latency(row: dict[str, Any], factor: float) -> ReferencedLatency:
    """`row` (measured beside the reference) scaled by `factor` into the reference conditions."""
    scaled = latency_of(row).scaled(factor)
    return ReferencedLatency(
        scaled.median_ms,
        scaled.low_ms,
        scaled.high_ms,
        scaled.runs,
        raw_median_ms=float(row["p50_ms"]),
        speedup=row.get("speedup"),
        speedup_ci=row.get("speedup_ci"),
    )


def table_context(device: str, runtime: dict[str, Any], options: MeterSettings) -> dict[str, Any]:
    """What makes table entries comparable: the device, its runtime (`runtime`, `runtime_version`
    as the agent reports them), threads, quantization and XNNPACK."""
    return {
        "device": device,
        "runtime": runtime["runtime"],
        "runtime_version": runtime["runtime_version"],
        "threads": options.threads,
        "quantize": options.quantize,
        "xnnpack": True,
        "entry": ENTRY_STATISTIC,
    }


def calibration_widths(traced: TracedModel, options: AdaptOptions) -> list[dict[str, int]]:
    """Every prunable group cut to each of `CALIBRATION_FRACTIONS` of its width (multiples
    of the granularity, at least the minimum), each set of widths once."""
    found: list[dict[str, int]] = []
    for fraction in CALIBRATION_FRACTIONS:
        widths = {}
        for group in traced.prunable():
            floor = max(options.granularity, options.min_filters)
            width = int(group.size * fraction) // options.granularity * options.granularity
            width = max(width, -(-floor // options.granularity) * options.granularity)
            if width < group.size:
                widths[group.name] = width
        if widths and widths not in found:
            found.append(widths)
    return found


def interval(row: dict[str, Any]) -> dict[str, Any]:
    """A row's latency and speed-up, with intervals, as reports show them."""
    return {
        "median_ms": row["p50_ms"],
        "ci_ms": row.get("p50_ci_ms"),
        "runs": row["runs"],
        "speedup": row.get("speedup"),
        "speedup_ci": row.get("speedup_ci"),
        "verdict": row.get("verdict"),
    }


def adapt_model_file(
    model_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    options: AdaptOptions | None = None,
    store: ResultsStore | str | os.PathLike[str] | None = DEFAULT_STORE,
    table: str | os.PathLike[str] | None = None,
    map_fn: MapFn | None = None,
    progress: Callable[[str], None] | None = None,
    **keywords: Any,
) -> AdaptReport:
    """Prune `model_path` to the target latency on `device`; writes `output` (.keras) + manifest.

    Give `options` or the `AdaptOptions` fields as keywords. `store`: where the
    measurements go (default results DB); `table`: the lookup-table file (default in the
    data dir); `map_fn`: how an iteration's proposals run (default: the host's executor, or
    the cluster at `cluster`).
    """
    chosen = AdaptOptions.from_parts(options, keywords)
    if chosen.data is None:
        raise UserError(
            "adapt fine-tunes every proposal; give data DATASET (digits, an .npz, a folder)",
            params=("data",),
        )
    source = check_input_path(model_path)
    target = check_output_path(output, (".keras",), "output model")
    if target.resolve() == source.resolve():
        raise UserError(f"output {str(output)!r} is the input model; choose another file name")
    from edgeprune.models import load_keras_model
    from edgeprune.prune.task_training import resolve_loss

    model = load_keras_model(source, custom_objects=chosen.custom_objects)
    traced = trace_model(model, chosen.criterion)  # refuses models without a layer graph
    dataset, task = load_task_data(chosen.data, model, chosen)
    if task.name != "classification":
        raise UserError(
            f"adapt ranks its proposals by top-1, so it needs a classifier, not `task` "
            f"{task.name} (prune it with channels --data and --ratio instead)",
            params=("task",),
        )
    resolve_loss(model, task, chosen.loss, source)  # a bad --loss fails before any training
    if not traced.prunable():
        raise UserError(
            f"model {model.name!r} has no channel group adapt may cut (every group is tied to "
            "an input, an output or an unknown layer)"
        )
    device = resolve_devices([chosen.device])[0]
    with proposal_map(
        chosen.cluster, map_fn, workdir_for(target)
    ) as run_all:  # a bad cluster fails here
        return _adapt(
            source, target, model, traced, dataset, device, chosen, store, table, run_all, progress
        )


def _adapt(
    source: Path,
    target: Path,
    model: Any,
    traced: Any,
    dataset: Any,
    device: Device,
    chosen: AdaptOptions,
    store: ResultsStore | str | os.PathLike[str] | None,
    table: str | os.PathLike[str] | None,
    run_all: MapFn,
    progress: Callable[[str], None] | None,
) -> AdaptReport:
    """Measure, iterate, fine-tune, save and measure again (everything is checked by now)."""
    from edgeprune.channels.finetune import finetune, top1
    from edgeprune.models import load_keras_model
    from edgeprune.tflite.conversion import convert

    results = open_store(store)
    identity = {
        "source_sha256": as_sha256(source),
        "options": {k: v for k, v in chosen.to_dict().items() if k not in IDENTITY_EXCLUDES},
    }
    workdir = Workdir.open(workdir_for(target), identity)
    workdir.root.mkdir(parents=True, exist_ok=True)
    meter = DeviceMeter(device, results, chosen, board_slot)

    baseline_tflite = workdir.root / "input.tflite"
    convert(model, baseline_tflite, quantize=chosen.quantize, dataset=dataset)
    variants = calibration_widths(traced, chosen)
    variant_files = []
    for index, widths in enumerate(variants):
        variant_files.append(workdir.root / f"calibration-{index}.tflite")
        cut = prune_to_widths(traced, widths)
        convert(cut, variant_files[-1], quantize=chosen.quantize, dataset=dataset)
    first_rows = meter.models([baseline_tflite, *variant_files])  # the device check
    baseline_row = first_rows[0]
    meter.set_reference(
        baseline_tflite, float(baseline_row["p50_ms"]), float(baseline_row["min_ms"])
    )
    context = table_context(device.name, meter.runtime, chosen)
    lookup = LatencyTable(table, context)
    signatures = layer_signatures(traced.graph, traced.keep_mask({}))
    variant_signatures = [layer_signatures(traced.graph, traced.keep_mask(w)) for w in variants]
    models = [signatures, *variant_signatures]
    stored = workdir.state.get("baseline") or {}
    kept = stored.get("calibration")
    lookup.fill([s for sigs in models for s in sigs], meter.table, chosen.quantize)
    if kept:  # a resumed run decides as it began
        settled = SettledCalibration(Calibration.from_dict(kept), int(stored.get("remeasured", 0)))
    else:
        settled = _calibration(
            lookup, models, first_rows, [baseline_tflite, *variant_files], meter, chosen
        )
    calibration = settled.calibration
    layer_sum = lookup.layer_sum(signatures)
    target_ms = (
        chosen.target_latency
        if chosen.target_latency is not None
        else baseline_row["p50_ms"] / float(chosen.target_speedup or 1)
    )
    if not kept:
        workdir.set_baseline(
            {
                "measured": interval(baseline_row),
                "layer_sum_ms": layer_sum,
                "calibration": calibration.to_dict(),
                "remeasured": settled.remeasured,
                "predicted_ms": calibration.predict(layer_sum),
                "target_ms": target_ms,
                "widths": traced.widths,
            }
        )
    predictor = Predictor(lookup, meter.table, chosen.quantize, calibration)

    def measure_model(path: Path, iteration: int) -> Latency:
        tflite = path.with_suffix(".tflite")
        convert(
            path,
            tflite,
            quantize=chosen.quantize,
            dataset=dataset,
            custom_objects=chosen.custom_objects,
        )
        return meter.model(tflite)

    outcome = adapt_loop(
        source,
        workdir,
        chosen,
        predictor=predictor,
        target_ms=target_ms,
        measure_model=measure_model,
        source_ms=meter.reference_ms,
        map_fn=run_all,
        progress=progress,
    )
    final_model = load_keras_model(outcome.model_path, custom_objects=chosen.custom_objects)
    before = top1(model, dataset)
    pruned_top1 = top1(final_model, dataset)
    if chosen.long_epochs > 0 and outcome.model_path != source:
        keywords = chosen.long_finetune_keywords()
        tuned = finetune(final_model, dataset, **keywords, source=source, teacher=model)
        after, distillation, rate = tuned["top1"], tuned["distillation"], tuned["learning_rate"]
    else:
        after, distillation, rate = pruned_top1, None, None
    final_tflite = workdir.root / "final.tflite"
    final_traced = trace_model(final_model, chosen.criterion)
    final_signatures = layer_signatures(final_traced.graph, final_traced.keep_mask({}))
    lookup.fill(final_signatures, meter.table, chosen.quantize)
    predicted_final = predictor.predict(final_signatures)
    accuracy = {
        "dataset": dataset.name,
        "split": "validation",
        "top1_before": before,
        "top1_after_iterations": pruned_top1,
        "top1_after": after,
        "long_epochs": chosen.long_epochs,
        "learning_rate": rate,
        "distillation": distillation,
    }
    widths_before = traced.widths
    widths_after = final_traced.widths
    groups = [
        {
            "name": name,
            "before": width,
            "after": widths_after.get(name, width),
            "fixed": traced.group(name).fixed_reason,
            "at_minimum": name in outcome.at_minimum,
        }
        for name, width in widths_before.items()
    ]
    iterations = workdir.iterations
    manifest = save_keras_artifact(
        final_model,
        target,
        step="adapt",
        options=chosen.to_dict(),
        source=source,
        accuracy={"dataset": dataset.name, "top1": after, "top1_before_pruning": before},
        extra={"adapt": {"widths": widths_after, "target_ms": target_ms, "device": device.name}},
    )
    convert(
        target,
        final_tflite,
        quantize=chosen.quantize,
        dataset=dataset,
        custom_objects=chosen.custom_objects,
    )
    rows = meter.models([baseline_tflite, final_tflite])
    final_row = rows[-1]
    factor = meter.reference_ms / float(rows[0]["p50_ms"])
    final_ms = float(final_row["p50_ms"]) * factor  # in the reference conditions
    plot = write_trajectory_svg(workdir.root / "trajectory.svg", workdir.state, target_ms)
    validation = _validation(iterations, predicted_final, final_ms, final_row["p50_ms"])
    validation["calibration"] = calibration.to_dict()
    met = final_ms <= target_ms
    notes = [] if settled.fits else [_calibration_note(settled, lookup.path)]
    if not met:
        notes.append(_short_of_target(final_ms, target_ms, outcome))
    return AdaptReport(
        output=str(target),
        manifest=str(manifest),
        workdir=str(workdir.root),
        device=device.name,
        target={
            "latency_ms": target_ms,
            "given": "target_latency" if chosen.target_latency is not None else "target_speedup",
            "speedup": chosen.target_speedup,
        },
        baseline={
            **interval(rows[0]),
            "reference_ms": meter.reference_ms,
            "reference_fastest_ms": meter.reference_fastest_ms,
            "predicted_ms": calibration.predict(layer_sum),
        },
        final={**interval(final_row), "reference_ms": final_ms, "predicted_ms": predicted_final},
        accuracy=accuracy,
        groups=groups,
        iterations=iterations,
        table={
            "path": str(lookup.path),
            "context": context,
            "entries": len(lookup),
            "measured_now": lookup.measured,
            "table_jobs": meter.jobs[TABLE_COMMAND],
            "remeasured": settled.remeasured,
            "calibration_fits": settled.fits,
            "model_jobs": meter.jobs[MODEL_COMMAND],
        },
        validation=validation,
        stop_reason=outcome.stop_reason,
        target_met=met,
        plot=str(plot),
        notes=notes,
    )


def _calibration(
    lookup: LatencyTable,
    models: list[list[Any]],
    first_rows: list[dict[str, Any]],
    files: list[Path],
    meter: DeviceMeter,
    chosen: AdaptOptions,
) -> SettledCalibration:
    """The table's calibration of these models (their entries filled) if it has one, else one
    fitted on the first job (measured again while it does not fit, see `adapt.calibrate`) and
    kept in the table."""
    found = lookup.kept_calibration(models)
    if found is not None:
        return SettledCalibration(found, 0)

    def measure_models() -> list[float]:
        rows = meter.models(files)  # the input model first: into the reference conditions
        factor = meter.reference_ms / float(rows[0]["p50_ms"])
        return [meter.reference_ms, *(float(r["p50_ms"]) * factor for r in rows[1:])]

    settled = settle_calibration(
        lookup,
        models,
        [float(row["p50_ms"]) for row in first_rows],
        measure_entries=meter.table,
        measure_models=measure_models,
        quantize=chosen.quantize,
        remeasures=chosen.table_remeasures,
    )
    lookup.keep_calibration(models, settled.calibration)
    return settled


def _calibration_note(settled: SettledCalibration, table: Path) -> str:
    error = settled.calibration.max_error
    return (
        f"the lookup table misses the whole models it is calibrated on by up to {error:.0%} "
        f"after {settled.remeasured} re-measurement(s): the device was busy while it was "
        f"measured, so predictions may be off by as much; to measure it again, re-run adapt "
        f"on an idle device with another table file than {str(table)!r} (table)"
    )


def as_sha256(path: Path) -> str:
    from device_agents.integrity import sha256_file

    return sha256_file(path)


def _validation(
    iterations: list[dict[str, Any]],
    predicted_final: float,
    measured_final: float,
    raw_final: float,
) -> dict[str, Any]:
    """Predicted vs measured whole-model latency, per iteration and for the final model
    (measured: in the reference conditions, see the module's doc; raw: as the job got it)."""
    pairs = [(i["predicted_ms"], i["measured"]["median_ms"]) for i in iterations]
    pairs.append((predicted_final, measured_final))
    raw = [i["measured"].get("raw_median_ms", i["measured"]["median_ms"]) for i in iterations]
    raw.append(raw_final)
    errors = [abs(p - m) / m for p, m in pairs if m > 0]
    raw_errors = [abs(p - m) / m for (p, _), m in zip(pairs, raw, strict=True) if m > 0]
    return {
        "pairs_ms": [list(p) for p in pairs],
        "mean_abs_error": sum(errors) / len(errors) if errors else None,
        "max_abs_error": max(errors) if errors else None,
        "final_error": (predicted_final - measured_final) / measured_final
        if measured_final > 0
        else None,
        "raw_ms": raw,
        "raw_mean_abs_error": sum(raw_errors) / len(raw_errors) if raw_errors else None,
    }


def _short_of_target(measured: float, target_ms: float, outcome: Any) -> str:
    minimum = ", ".join(outcome.at_minimum) or "none"
    return (
        f"target {target_ms:.4g} ms not reached: stopped at {measured:.4g} ms measured "
        f"({outcome.predicted_ms:.4g} ms predicted, {measured / target_ms:.2f}× the target; "
        f"{outcome.stop_reason}); groups at their minimum width: {minimum}"
    )


@contextlib.contextmanager
def proposal_map(cluster: str | None, given: MapFn | None, workdir: Path) -> Iterator[MapFn]:
    """`given`, else the executor's `map` (the host's cores, or the cluster at `cluster`,
    whose workers must see `workdir`: proposals read and write their models there)."""
    if given is not None:
        yield given
        return
    from edgeprune.compute import open_executor

    executor = open_executor(cluster)
    try:
        if cluster is not None:
            workdir.mkdir(parents=True, exist_ok=True)
            executor.require_shared_dir(workdir)
        yield executor.map
    finally:
        executor.close()
