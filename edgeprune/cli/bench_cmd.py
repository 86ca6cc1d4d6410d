"""`edgeprune bench MODEL... --device ...`: measure models on boards and keep the numbers."""

from __future__ import annotations

from typing import Any

import typer

from edgeprune.cli.common import (
    accept_option,
    all_option,
    concurrency_alias_option,
    db_option,
    deploy_options,
    device_option,
    err_console,
    inventory_option,
    json_option,
    mlflow_option,
    parallel_option,
    parse_int_list,
    print_json,
    select_devices,
    tag_option,
)
from edgeprune.cli.options import flag
from edgeprune.cli.present_bench import print_bench_run, print_sparse_ab
from edgeprune.cli.present_fleet import print_failed_devices
from edgeprune.cli.present_live import FleetLive
from edgeprune.errors import UserError
from edgeprune.fleet.options import BenchOptions
from edgeprune.options import CustomObjectsFields


def register(app: typer.Typer) -> None:
    """Add `bench`."""

    @app.command("bench")
    def bench_cmd(
        models: list[str] = typer.Argument(
            ..., help="Model files (.tflite); the first is the baseline."
        ),
        device: list[str] = device_option(),
        tag: list[str] = tag_option(),
        all_: bool = all_option(),
        threads: str = flag(BenchOptions, "threads", default="1"),
        runs: int = flag(BenchOptions, "runs", min=1, max=1_000_000),
        min_seconds: float = flag(BenchOptions, "min_seconds"),
        warmup: int = flag(BenchOptions, "warmup", min=0, max=100_000),
        xnnpack: bool = flag(BenchOptions, "xnnpack", "--xnnpack/--no-xnnpack"),
        cpus: str = flag(BenchOptions, "cpus"),
        delay_ms: float = flag(BenchOptions, "delay_ms"),
        seed: int = flag(BenchOptions, "seed"),
        runtime: str = flag(BenchOptions, "runtime"),
        inputs: str = flag(BenchOptions, "inputs", metavar="FILE"),
        timeout_s: float = flag(BenchOptions, "timeout_s", "--timeout", "--timeout-s", min=1.0),
        round_runs: int = flag(BenchOptions, "round_runs", min=1, max=100_000),
        precision: str = flag(BenchOptions, "precision", metavar="PCT"),
        max_seconds: float = flag(BenchOptions, "max_seconds"),
        rounds_per_process: int = flag(BenchOptions, "rounds_per_process", min=1, max=100_000),
        interleave: bool = flag(BenchOptions, "interleave", "--interleave/--no-interleave"),
        db: str = db_option(),
        mlflow: str = mlflow_option(),
        inventory: str = inventory_option(),
        accept_new_host_key: bool = accept_option(),
        parallel: int | None = parallel_option(),
        concurrency: int | None = concurrency_alias_option(),
        as_json: bool = json_option(),
        sparse_ab: bool = typer.Option(
            False,
            "--sparse-ab",
            help="Per pruned model (.keras or .tflite): the same weights stored dense and "
            "sparse, measured side by side; reports the sparse speed-up.",
        ),
        custom_objects: str | None = flag(CustomObjectsFields, "custom_objects"),
    ) -> None:
        """Deploy what is missing, measure the models on each device (interleaved in one job
        unless --no-interleave), store and show the results."""
        options = BenchOptions.create(
            threads=parse_int_list(threads, "--threads", minimum=1),
            runs=runs,
            min_seconds=min_seconds,
            warmup=warmup,
            xnnpack=xnnpack,
            cpus=None if cpus is None else parse_int_list(cpus, "--cpus", minimum=0),
            delay_ms=float(delay_ms),
            timeout_s=float(timeout_s),
            seed=seed,
            runtime=runtime,
            round_runs=round_runs,
            precision=precision,  # "2%" or 0.02: BenchOptions reads both
            max_seconds=max_seconds,
            rounds_per_process=rounds_per_process,
            interleave=interleave,
        )
        if sparse_ab and mlflow:
            raise UserError(
                "--mlflow is not logged for --sparse-ab yet; log the pair with a plain bench of "
                "both files"
            )
        if custom_objects is not None:  # --sparse-ab converts .keras files: import them first
            from edgeprune.models import collect_custom_objects

            collect_custom_objects(custom_objects)  # registered classes reach Keras' registry
        deploy = deploy_options(parallel, accept_new_host_key, concurrency)
        devices = select_devices(inventory, device, tag, all_, default_local=True)
        from edgeprune.workflows.bench import DEFAULT_STORE, bench_models
        from edgeprune.workflows.sparse_ab import sparse_ab as sparse_ab_of

        outcome: Any
        with FleetLive([d.name for d in devices], enabled=not as_json) as live:
            shared: dict[str, Any] = {
                "store": db or DEFAULT_STORE,  # opened once the models and inputs are checked
                "inputs": inputs,
                "deploy": deploy,
                "progress": live.step,
                "deploy_progress": live.upload,
            }
            if sparse_ab:
                note = None if as_json else err_console.print
                outcome = sparse_ab_of(models, devices, options, on_note=note, **shared)
            else:
                outcome = bench_models(models, devices, options, mlflow=mlflow, **shared)
        if as_json:
            print_json(outcome.to_dict())
        elif sparse_ab:
            print_sparse_ab(outcome)
        else:
            print_bench_run(outcome)
        live.summary(outcome.group, "bench")
        print_failed_devices(outcome.group)
        outcome.raise_for_failures()
