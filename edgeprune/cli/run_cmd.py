"""`edgeprune run RECIPE`: every variant of a recipe built, measured and compared; the pick."""

from __future__ import annotations

import sys

import typer

from edgeprune.cli.common import (
    RUN_DB_HELP,
    accept_option,
    chosen_parallel,
    concurrency_alias_option,
    console,
    db_option,
    deprecated_flag,
    device_option,
    err_console,
    inventory_option,
    joined,
    json_option,
    mlflow_option,
    parallel_option,
    print_json,
    quiet_option,
)
from edgeprune.cli.options import flag
from edgeprune.cli.present_progress import training_progress
from edgeprune.cli.present_recipe import print_grid, print_plan, print_progress, print_report
from edgeprune.compute.options import ComputeOptions
from edgeprune.errors import EdgepruneError
from edgeprune.recipes.constraints import ConstraintOptions

FLAG_NAMES = {"max_peak_memory_mb": "--max-memory-mb"}
"""Constraint fields whose flag is spelled differently (shorter) than the field."""

RUN_DEVICE_HELP = (
    "Device names or tags (repeat, or comma-separate: --device pi4,jetson); default: the recipe's."
)


def register(app: typer.Typer) -> None:
    """Add `run`."""

    @app.command("run")
    def run_cmd(
        recipe: str = typer.Argument(
            ..., help="Recipe file (.yaml), e.g. configs/recipes/demo.yaml."
        ),
        device: list[str] = device_option(RUN_DEVICE_HELP),
        devices_deprecated: list[str] = typer.Option(
            None, "--devices", hidden=True, help="Deprecated spelling of --device."
        ),
        dry_run: bool = typer.Option(
            False, "--dry-run", help="Print the variants and stages (cached or not); do nothing."
        ),
        strategy: str = typer.Option(
            "default", "--strategy", help="tf.distribute strategy for training: default|mirrored."
        ),
        accuracy_budget: float = typer.Option(
            None,
            "--accuracy-budget",
            help="How much of the deciding metric a variant may lose against the baseline, in "
            "its units: points for top-1/mIoU/mAP, RMSE units for RMSE (overrides the recipe).",
        ),
        max_latency_ms: float | None = flag(ConstraintOptions, "max_latency_ms"),
        latency_percentile: int | None = flag(ConstraintOptions, "latency_percentile"),
        max_peak_memory_mb: float | None = flag(
            ConstraintOptions, "max_peak_memory_mb", FLAG_NAMES["max_peak_memory_mb"]
        ),
        max_model_kb: float | None = flag(ConstraintOptions, "max_model_kb"),
        workdir: str = typer.Option(
            None,
            "--workdir",
            help="Stage cache and reports (default: the recipe's, else ./build/NAME).",
        ),
        db: str = db_option(RUN_DB_HELP),
        inventory: str = inventory_option(),
        accept_new_host_key: bool = accept_option(
            help="Trust and record unknown SSH host keys (also: the recipe's "
            "deploy.accept_new_host_key).",
        ),
        parallel: int | None = parallel_option(
            help="How many devices to work on at once (default: the recipe's "
            "deploy.parallel, else all of them, at most 32).",
        ),
        concurrency: int | None = concurrency_alias_option(),
        as_json: bool = json_option(),
        mlflow: str | None = mlflow_option(),
        cluster: str | None = flag(ComputeOptions, "cluster", metavar="ADDRESS"),
        quiet: bool = quiet_option(),
    ) -> None:
        """Build every variant of RECIPE, evaluate it, measure it on the devices, recommend one."""
        if devices_deprecated:
            deprecated_flag("--devices", "--device")
        try:
            limits = ConstraintOptions.create(
                max_latency_ms=max_latency_ms,
                latency_percentile=latency_percentile,
                max_peak_memory_mb=max_peak_memory_mb,
                max_model_kb=max_model_kb,
            )
            _run(
                recipe,
                joined(device, devices_deprecated),
                dry_run,
                strategy,
                accuracy_budget,
                limits,
                workdir,
                db,
                inventory,
                chosen_parallel(parallel, concurrency),
                accept_new_host_key,
                as_json,
                mlflow,
                quiet,
                cluster,
            )
        except EdgepruneError as exc:
            if not {"devices", *FLAG_NAMES} & set(exc.params):
                raise
            typed = "--devices" if devices_deprecated else "--device"  # the flag as it was typed
            raise type(exc)(exc.in_flags({"devices": typed, **FLAG_NAMES})) from None


def _run(
    recipe: str,
    devices: list[str],
    dry_run: bool,
    strategy: str,
    accuracy_budget: float | None,
    limits: ConstraintOptions,
    workdir: str | None,
    db: str | None,
    inventory: str | None,
    parallel: int | None,
    accept_new_host_key: bool,
    as_json: bool,
    mlflow: str | None,
    quiet: bool,
    cluster: str | None = None,
) -> None:
    from edgeprune.fleet.inventory import split_names
    from edgeprune.fleet.session import ConnectOptions
    from edgeprune.recipes import load_recipe, plan_recipe, run_recipe

    loaded = load_recipe(recipe)
    names = split_names(devices) or None
    if dry_run:
        plan = plan_recipe(
            loaded,
            workdir=workdir,
            devices=names,
            inventory=inventory,
            db=db,
            **limits.model_dump(),
        )
        if as_json:
            print_json(plan.to_dict())
        else:
            print_plan(plan)
        return
    if not as_json:
        err_console.print(
            f"recipe {loaded.name}: {len(loaded.variants)} variant(s); "
            f"work dir {loaded.workdir(workdir)}"
        )
    with training_progress(quiet or as_json, live=False):
        outcome = run_recipe(
            loaded,
            workdir=workdir,
            devices=names,
            inventory=inventory,
            db=db,
            strategy=strategy,
            accuracy_budget=accuracy_budget,
            **limits.model_dump(),
            progress=None if as_json else print_progress,
            # given flags win over the recipe's `deploy:` section
            connect=ConnectOptions(accept_new_host_key=True) if accept_new_host_key else None,
            parallel=parallel,
            mlflow=mlflow,
            cluster=cluster,
        )
    if as_json:
        print_json(outcome.to_dict())
    else:
        print_grid(outcome.grid)
        if outcome.report is not None:
            print_report(outcome.report)
        console.print(
            f"{outcome.trained} stage(s) built, {outcome.measured} measurement(s) made in "
            f"{outcome.seconds:.1f} s; report: {outcome.files.get('html', '–')}; "
            f"results run {outcome.run_id} in {outcome.db}"
        )
        if outcome.run_id is not None:
            console.print(
                f"see it again: edgeprune results show {outcome.run_id} --db {outcome.db}"
            )
        if outcome.mlflow:
            console.print(
                f"logged to MLflow at {outcome.mlflow['uri']}: {len(outcome.mlflow['runs'])} "
                f"run(s) in experiment {outcome.mlflow['experiment_id']}"
            )
    for error in outcome.device_errors.values():
        print(f"error: {error}", file=sys.stderr)
    outcome.raise_for_failures()
