"""`run_recipe`: plan, build the missing stages, measure on the devices, report.

Order: every variant's host stages (shared stages once), then the bench stage on all
devices in parallel, then the report. A stage that fails marks its variant failed (with
the reason) and the sweep goes on; the base model failing stops the run, since every
variant needs it. A device that fails is reported and the others finish. Whatever
finished is cached, so a re-run after a crash or after adding a sweep value does only
the missing work.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeprune.errors import UserError
from edgeprune.fleet.options import DeployOptions
from edgeprune.fleet.session import ConnectOptions
from edgeprune.recipes.cache import StageCache, workdir_lock
from edgeprune.recipes.devices import resolve_devices
from edgeprune.recipes.loader import Recipe
from edgeprune.recipes.plan import Plan, PlannedStage, VariantPlan, make_plan, plan_bench
from edgeprune.recipes.report import (
    RUN_COMMAND,
    RecipeReport,
    build_report,
    recipe_outcome,
    referenced_runs,
)
from edgeprune.recipes.stage_build import one_line, output_name
from edgeprune.results.recording import ended_early_recorded
from edgeprune.results.store import recorded_reuse


@dataclass
class StageEvent:
    """Progress: variant × stage, and what happened to it."""

    variant: str
    stage: str
    state: str  # running | done | cached | failed | skipped | measuring ...
    index: int = 0  # 1-based position of the variant
    total: int = 0
    seconds: float = 0.0
    message: str = ""


Progress = Callable[[StageEvent], None]


@dataclass
class RunOutcome:
    plan: Plan
    report: RecipeReport | None
    grid: dict[str, dict[str, str]]  # variant -> stage -> state
    failures: dict[str, str]  # variant -> first error
    device_errors: dict[str, str]
    run_id: int | None
    db: Path | None
    files: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0
    trained: int = 0  # stages that trained or built a model in this run
    measured: int = 0  # (variant, device) measurements made in this run
    mlflow: dict[str, Any] | None = None  # the MLflow runs written (`mlflow`), as MlflowLog.to_dict

    def raise_for_failures(self) -> None:
        """What counts as a failed run: a device that failed (`DeviceError`: a re-run
        measures what is missing), else any variant that failed (exit 1)."""
        from edgeprune.errors import DeviceError, EdgepruneError

        if self.device_errors:
            raise DeviceError(
                f"{len(self.device_errors)} device(s) failed; re-run the same command to "
                "measure what is missing (everything finished is cached)"
            )
        if self.failures:
            variant, error = next(iter(self.failures.items()))
            raise EdgepruneError(
                f"{len(self.failures)} of {len(self.plan.variants)} variant(s) failed; "
                f"first: {variant}: {error}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": str(self.plan.recipe.path),
            "name": self.plan.recipe.name,
            "workdir": str(self.plan.workdir),
            "run_id": self.run_id,
            "db": str(self.db) if self.db else None,
            "seconds": round(self.seconds, 2),
            "stages_built": self.trained,
            "measurements_made": self.measured,
            "grid": self.grid,
            "failures": self.failures,
            "device_errors": self.device_errors,
            "files": {k: str(v) for k, v in self.files.items()},
            "mlflow": self.mlflow,
            "devices": self.report.decisions() if self.report else [],
            "report": self.report.to_dict() if self.report else None,
        }


def plan_recipe(
    recipe: Recipe,
    *,
    workdir: str | os.PathLike[str] | None = None,
    devices: list[str] | None = None,
    inventory: str | None = None,
    db: str | os.PathLike[str] | None = None,
    max_latency_ms: float | None = None,
    latency_percentile: int | None = None,
    max_peak_memory_mb: float | None = None,
    max_model_kb: float | None = None,
) -> Plan:
    """The plan with cache status of every stage and each device's constraints (the
    recipe's, replaced by the keywords given, as in `run_recipe`): what `--dry-run` prints;
    touches nothing."""
    from edgeprune.recipes.constraints import ConstraintOptions
    from edgeprune.recipes.limits import device_limits

    given = ConstraintOptions.create(
        max_latency_ms=max_latency_ms,
        latency_percentile=latency_percentile,
        max_peak_memory_mb=max_peak_memory_mb,
        max_model_kb=max_model_kb,
    )
    chosen = resolve_devices(recipe, devices, inventory)
    limits = device_limits(recipe, chosen, given)  # a key naming no device: file:line
    plan = make_plan(recipe, recipe.workdir(workdir), chosen)
    plan.constraints = limits
    plan_bench(plan, _existing_store(db, plan.workdir))
    return plan


def deploy_options_of(recipe: Recipe) -> DeployOptions:
    """The recipe's `deploy:` section as the deploy stage's options."""
    return DeployOptions.create(**recipe.spec.deploy.model_dump())


def recipe_db_path(db: str | os.PathLike[str] | None, workdir: Path) -> Path:
    """`db`, else `$EDGEPRUNE_RESULTS_DB`, else `<workdir>/results.db`: a recipe's runs live
    with its work dir, not among every other tool's runs on this machine."""
    from edgeprune.results.store import chosen_db_path

    return chosen_db_path(db, workdir)


def _existing_store(db: str | os.PathLike[str] | None, workdir: Path) -> Any | None:
    from edgeprune.results.store import ResultsStore

    path = recipe_db_path(db, workdir)
    return ResultsStore(path, create=False) if path.is_file() else None


def run_recipe(
    recipe: Recipe,
    *,
    workdir: str | os.PathLike[str] | None = None,
    devices: list[str] | None = None,
    inventory: str | None = None,
    db: str | os.PathLike[str] | None = None,
    strategy: str = "default",
    accuracy_budget: float | None = None,
    max_latency_ms: float | None = None,
    latency_percentile: int | None = None,
    max_peak_memory_mb: float | None = None,
    max_model_kb: float | None = None,
    progress: Progress | None = None,
    connect: ConnectOptions | None = None,
    parallel: int | None = None,
    mlflow: str | None = None,
    cluster: str | None = None,
) -> RunOutcome:
    """Build, evaluate, measure and report every variant; returns what happened.

    `connect` and `parallel` override the recipe's `deploy:` section when given. The
    constraint keywords (`ConstraintOptions`' fields) replace the recipe's `constraints:`
    for every device; what is cached is not redone, so a re-run with new limits only
    decides again. `mlflow` (a tracking URI; else the recipe's `mlflow:`) also logs one MLflow
    run per variant × device, with the variant's `.tflite` and the report. `db`: the results
    DB; default `$EDGEPRUNE_RESULTS_DB`, else `results.db` in the work dir. A re-run whose
    measurements are all cached stores a `cached` run pointing at the ones it reused. `cluster` (a
    dask.distributed scheduler, tcp://HOST:PORT; else the recipe's `compute.cluster`) builds
    the host stages on that cluster's workers, each wave of independent stages at once.
    """
    from edgeprune.compute.options import ComputeOptions
    from edgeprune.recipes.cluster_build import build_on, cluster_executor
    from edgeprune.recipes.constraints import ConstraintOptions
    from edgeprune.recipes.context import STRATEGIES
    from edgeprune.recipes.limits import device_limits

    given = ConstraintOptions.create(
        max_latency_ms=max_latency_ms,
        latency_percentile=latency_percentile,
        max_peak_memory_mb=max_peak_memory_mb,
        max_model_kb=max_model_kb,
    )

    configured: Any = recipe.spec.compute  # a model built from ComputeOptions' fields
    compute = ComputeOptions.create(cluster=configured.cluster if cluster is None else cluster)
    if strategy not in STRATEGIES:
        raise UserError(
            f"strategy {strategy!r} is not one of {', '.join(STRATEGIES)}", params=("strategy",)
        )
    if accuracy_budget is not None and not 0 <= accuracy_budget <= 100:
        raise UserError(
            f"accuracy_budget {accuracy_budget:g} must be in [0, 100] points",
            params=("accuracy_budget",),
        )
    tracking = mlflow if mlflow is not None else recipe.spec.mlflow
    if tracking is not None:
        from edgeprune.results.mlflow_log import check_tracking_uri

        check_tracking_uri(tracking)
    start = time.perf_counter()
    deploy = deploy_options_of(recipe)
    connect = connect or deploy.connect()
    parallel = deploy.parallel if parallel is None else parallel
    chosen = resolve_devices(recipe, devices, inventory)
    limits = device_limits(recipe, chosen, given)
    root = recipe.workdir(workdir)
    from edgeprune.results.store import ResultsStore

    with cluster_executor(compute.cluster) as on_cluster, workdir_lock(root):
        store = ResultsStore(recipe_db_path(db, root))  # checked before any slow work
        cache = StageCache(root)
        cache.clean_partials()
        plan = make_plan(recipe, root, chosen, cache)
        builder = _HostStages(plan, strategy, progress or (lambda event: None))
        if on_cluster is not None:  # the waves there; the pass below finds them cached
            build_on(
                on_cluster,
                builder,
                lambda *wave: builder.progress(StageEvent("*", "cluster", *wave)),
            )
        builder.run()
        outcome = RunOutcome(plan, None, builder.grid, builder.failures, {}, None, store.path)
        outcome.trained = builder.built
        with ended_early_recorded(store, lambda: outcome.run_id):  # Ctrl-C: interrupted
            _bench_and_report(
                plan, builder, store, outcome, accuracy_budget, connect, parallel, limits
            )
        if tracking is not None and outcome.run_id is not None:
            outcome.mlflow = _log_to_mlflow(tracking, plan, store, outcome)
    outcome.seconds = time.perf_counter() - start
    return outcome


class _HostStages:
    """Runs the host stages of every variant in order, each shared stage once."""

    def __init__(self, plan: Plan, strategy: str, progress: Progress) -> None:
        from edgeprune.recipes.context import StageContext

        self.plan = plan
        self.progress = progress
        self.ctx = StageContext(plan.recipe, strategy)
        self.grid: dict[str, dict[str, str]] = {}
        self.failures: dict[str, str] = {}
        self.failed_keys: dict[tuple[str, str], str] = {}
        self.built = 0
        self.built_keys: set[tuple[str, str]] = set()

    def run(self) -> None:
        total = len(self.plan.variants)
        for index, variant_plan in enumerate(self.plan.variants, start=1):
            row = self.grid.setdefault(variant_plan.name, {})
            parent: Path | None = None
            failed: str | None = None
            for stage in variant_plan.stages:
                event = StageEvent(variant_plan.name, stage.kind, "", index, total)
                if failed is not None:
                    row[stage.kind] = "skipped"
                    self.progress(_with(event, "skipped"))
                    continue
                if stage.record is None and (stage.kind, stage.key) in self.failed_keys:
                    failed = self.failed_keys[(stage.kind, stage.key)]
                elif stage.record is None:
                    failed = self._build(stage, parent, variant_plan, event)
                else:
                    was_built = (stage.kind, stage.key) in self.built_keys
                    row[stage.kind] = "done" if was_built else "cached"
                    self.progress(_with(event, "shared" if was_built else "cached"))
                if failed is not None:
                    row[stage.kind] = "failed"
                    self.failures.setdefault(variant_plan.name, f"{stage.kind}: {failed}")
                    continue
                assert stage.record is not None
                row[stage.kind] = row.get(stage.kind) or "done"
                parent = stage.record.output(self.plan.cache, output_name(stage.kind))
                if stage.kind == "base":
                    self.ctx.base_dir = parent.parent
                    shape = stage.record.metrics.get("input_shape")
                    self.ctx.input_shape = tuple(shape) if shape else None

    def _build(
        self, stage: PlannedStage, parent: Path | None, variant_plan: VariantPlan, event: StageEvent
    ) -> str | None:
        from edgeprune.recipes.stage_build import build_stage

        self.progress(_with(event, "running"))
        began = time.perf_counter()
        try:
            record = build_stage(
                self.ctx, self.plan.cache, stage.kind, stage.key, stage.options, parent
            )
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            if stage.kind == "base":  # every variant needs it: stop here
                raise
            message = one_line(exc)
            self._log_failure(variant_plan.name, stage.kind, exc)
            self.failed_keys[(stage.kind, stage.key)] = message
            self.progress(_with(event, "failed", time.perf_counter() - began, message))
            return message
        stage.record = record
        self.built += 1
        self.built_keys.add((stage.kind, stage.key))
        self.progress(_with(event, "done", record.seconds))
        return None

    def _log_failure(self, variant: str, kind: str, exc: Exception) -> None:
        log = self.plan.workdir / "errors.log"
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {variant} × {kind}\n")
            handle.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))


def _bench_and_report(
    plan: Plan,
    builder: _HostStages,
    store: Any,
    outcome: RunOutcome,
    accuracy_budget: float | None,
    connect: ConnectOptions | None,
    parallel: int | None,
    limits: dict[str, Any],
) -> None:
    from edgeprune.recipes.benching import bench_missing, publish_variant, write_inputs
    from edgeprune.recipes.report_html import write_report_files

    converted = [v for v in plan.variants if v.converted is not None]
    for variant_plan in converted:
        publish_variant(plan, variant_plan)
    if plan.inputs_path is not None and converted and not plan.inputs_path.is_file():
        data = builder.ctx.data.training(builder.ctx.input_shape)
        write_inputs(plan, data.x_val, data.y_val)
    plan_bench(plan, store)
    budget = accuracy_budget  # None: the recipe's budget (`budget:`, a percent or units)
    record = run_record(plan, outcome.failures, budget, limits)
    outcome.run_id = store.begin_run(RUN_COMMAND, record, label=plan.recipe.name, kind="recipe")

    def step(device: str, what: str, done: int, total: int) -> None:
        builder.progress(StageEvent("*", f"bench@{device}", what, done, total))

    for variant_plan in plan.variants:
        for device, bench in variant_plan.bench.items():
            state = "cached" if bench.cached else "pending" if bench.key else "skipped"
            outcome.grid.setdefault(variant_plan.name, {})[f"bench@{device}"] = state
    group = bench_missing(
        plan, store, outcome.run_id, connect=connect, step=step, parallel=parallel
    )
    for device_outcome in group:
        name = device_outcome.device.name
        if not device_outcome.ok:
            outcome.device_errors[name] = device_outcome.message
            for variant_plan in plan.variants:
                if outcome.grid[variant_plan.name].get(f"bench@{name}") == "pending":
                    outcome.grid[variant_plan.name][f"bench@{name}"] = "failed"
            continue
        run = device_outcome.value
        assert run is not None
        outcome.measured += len(run.measured)
        for variant in run.measured:
            outcome.grid[variant][f"bench@{name}"] = "done"
        for variant, error in run.failed.items():
            outcome.grid[variant][f"bench@{name}"] = "failed"
            outcome.failures.setdefault(variant, f"bench@{name}: {error}")
    final = run_record(plan, outcome.failures, budget, limits)
    final["device_errors"] = outcome.device_errors
    store.finish_run(
        outcome.run_id,
        *recipe_outcome(outcome.device_errors, outcome.failures, outcome.measured),
        options=final,  # the record with this run's own measurements too
        reused=recorded_reuse(final, outcome.run_id),
    )
    rows = store.measurements(run_ids=referenced_runs(final, outcome.run_id), with_json=True)
    outcome.report = build_report(final, rows, outcome.run_id)
    outcome.files = write_report_files(outcome.report, plan.workdir)


def _log_to_mlflow(uri: str, plan: Plan, store: Any, outcome: RunOutcome) -> dict[str, Any]:
    """One MLflow run per variant × device: its steps as params, the numbers, its `.tflite`
    and the report."""
    from edgeprune.results.mlflow_log import log_runs

    record = store.run_info(outcome.run_id) or {}
    rows = store.measurements(run_ids=referenced_runs(record.get("options") or {}, outcome.run_id))
    files = {}
    steps = {}
    for variant_plan in plan.variants:
        published = plan.workdir / "models" / f"{variant_plan.name}.tflite"
        if variant_plan.converted is not None and published.is_file():
            files[variant_plan.converted.metrics["sha256"]] = published
        steps[variant_plan.name] = variant_plan.variant.describe()
    logged = log_runs(
        uri,
        rows,
        params={
            "recipe": plan.recipe.name,
            "steps": "; ".join(f"{k}: {v}" for k, v in steps.items()),
        },
        model_files=files,
        report=outcome.files.get("html"),
        tags={"edgeprune.recipe": plan.recipe.name},
    )
    return logged.to_dict()


def run_record(
    plan: Plan,
    failures: dict[str, str],
    budget: float | None,
    limits: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What the results store keeps about a recipe run, enough to rebuild its report
    (with the per-sample correctness, so a later report judges drops on the same samples).
    `budget` (given to the run) replaces the recipe's; a percent budget is kept resolved
    against the baseline, in the deciding metric's units (points for fractions)."""
    base = plan.variants[0].stages[0].record if plan.variants else None
    decision = plan.recipe.decision
    scored = bool(base and "scores" in base.metrics)
    base_value = (
        (base.metrics.get("score") if scored else base.metrics.get("top1")) if base else None
    )
    if budget is None:
        budget = decision.budget_for(base_value)
    variants = []
    for variant_plan in plan.variants:
        record = variant_plan.converted
        metrics = record.metrics if record else {}
        variants.append(
            {
                "name": variant_plan.name,
                "steps": variant_plan.variant.describe(),
                "sha256": metrics.get("sha256"),
                "top1": metrics.get("top1"),
                "score": metrics.get("score"),
                "scores": metrics.get("scores"),
                "drop_ci": metrics.get("drop_ci"),
                "size_bytes": metrics.get("size_bytes"),
                "gzip_bytes": metrics.get("gzip_bytes"),
                "samples": metrics.get("samples"),
                "correct": metrics.get("correct"),
                "quantize": metrics.get("quantize"),
                "sparsity": metrics.get("sparsity"),
                "sparse_weights": metrics.get("sparse_weights"),
                "error": failures.get(variant_plan.name) if record is None else None,
            }
        )
    measurements: dict[str, dict[str, list[Any]]] = {}
    for variant_plan in plan.variants:
        for device, bench in variant_plan.bench.items():
            if bench.record is not None:
                measurements.setdefault(device, {})[variant_plan.name] = [
                    bench.record["run_id"],
                    bench.record["job_id"],
                ]
    return {
        "recipe": str(plan.recipe.path),
        "name": plan.recipe.name,
        "workdir": str(plan.workdir),
        "accuracy_budget": budget,
        "budget_percent": decision.percent,
        "metric": decision.to_dict() if scored else None,
        "baseline_score": base.metrics.get("score") if base and scored else None,
        "baseline_scores": base.metrics.get("scores") if base and scored else None,
        "baseline_top1": base.metrics.get("top1") if base else None,
        "baseline_samples": base.metrics.get("samples") if base else None,
        "baseline_classes": base.metrics.get("classes") if base else None,
        "baseline_correct": base.metrics.get("correct") if base else None,
        "constraints": {name: options.model_dump() for name, options in (limits or {}).items()},
        "bench_options": plan.bench_options.__dict__,
        "devices": [d.name for d in plan.devices],
        "variants": variants,
        "measurements": measurements,
    }


def _with(event: StageEvent, state: str, seconds: float = 0.0, message: str = "") -> StageEvent:
    return StageEvent(event.variant, event.stage, state, event.index, event.total, seconds, message)
