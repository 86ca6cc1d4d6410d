"""`edgeprune prune`: magnitude pruning of a Keras model, one-shot or gradual with --data."""

from __future__ import annotations

from typing import Any

import typer

from edgeprune.cli.common import console, print_json


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("prune")(prune)


def prune(
    model: str = typer.Argument(..., help="Keras model to prune (.keras or .h5)."),
    output: str = typer.Option(..., "-o", "--output", help="Pruned model to write (.keras)."),
    sparsity: float | None = typer.Option(
        None,
        "--sparsity",
        help="Target fraction of zeros in [0, 0.99]; may be left out with --pattern N:M.",
    ),
    scope: str = typer.Option(
        "local", "--scope", help="local (every layer at S) | global (one threshold) | balanced."
    ),
    max_layer_sparsity: float | None = typer.Option(
        None, "--max-layer-sparsity", help="Cap per layer for --scope balanced (default 0.95)."
    ),
    include: list[str] = typer.Option(
        [], "--include", metavar="GLOB", help="Prune only layers matching this glob (repeatable)."
    ),
    exclude: list[str] = typer.Option(
        [], "--exclude", metavar="GLOB", help="Never prune layers matching this glob (repeatable)."
    ),
    min_params: int = typer.Option(
        1024, "--min-params", help="Skip kernels with fewer weights (0 with --policy xnnpack)."
    ),
    pattern: str | None = typer.Option(
        None,
        "--pattern",
        help="N:M (e.g. 2:4, along input channels) or block:RxC (e.g. block:4x1).",
    ),
    policy: str = typer.Option(
        "all",
        "--policy",
        help="Which layers may be pruned: all | xnnpack (1x1 convs of XNNPACK sparse clusters).",
    ),
    data: str | None = typer.Option(
        None, "--data", help="Dataset for gradual pruning: digits, an .npz or an image folder."
    ),
    epochs: int | None = typer.Option(None, "--epochs", help="Fine-tuning epochs (default 8)."),
    schedule: str | None = typer.Option(
        None, "--schedule", help="constant | polynomial (default polynomial)."
    ),
    begin_step: int | None = typer.Option(
        None, "--begin-step", help="First pruning step (default 0)."
    ),
    end_step: int | None = typer.Option(
        None, "--end-step", help="Last pruning step (default: half of training)."
    ),
    frequency: int | None = typer.Option(
        None, "--frequency", help="Steps between mask updates (default: about 20 updates)."
    ),
    initial_sparsity: float | None = typer.Option(
        None, "--initial-sparsity", help="Sparsity at begin-step (polynomial, default 0)."
    ),
    power: float | None = typer.Option(
        None, "--power", help="Polynomial ramp exponent (default 3)."
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Batch size (default 32)."),
    learning_rate: float | None = typer.Option(
        None, "--learning-rate", help="Adam learning rate (default 0.001)."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Zero the smallest weights of a Keras model; writes OUT and OUT.json (manifest)."""
    from edgeprune.prune.model_file import TrainingOptions, prune_model_file

    run = prune_model_file(
        model,
        output,
        sparsity,
        scope=scope,
        max_layer_sparsity=max_layer_sparsity,
        include=include,
        exclude=exclude,
        min_params=min_params,
        pattern=pattern,
        policy=policy,
        training=TrainingOptions(
            data=data,
            epochs=epochs,
            schedule=schedule,
            begin_step=begin_step,
            end_step=end_step,
            frequency=frequency,
            initial_sparsity=initial_sparsity,
            power=power,
            batch_size=batch_size,
            learning_rate=learning_rate,
        ),
    )
    if json_output:
        print_json(run.to_dict())
        return
    _print_run(run)


def _print_run(run: Any) -> None:
    from rich.table import Table

    report = run.report
    table = Table(title=f"pruned {run.source} ({report.scope}, {run.options['mode']})")
    table.add_column("layer")
    table.add_column("type")
    table.add_column("weights", justify="right")
    table.add_column("target", justify="right")
    table.add_column("achieved", justify="right")
    if report.pattern:
        table.add_column(report.pattern)
    for kernel in report.kernels:
        row = [
            kernel.layer,
            kernel.class_name,
            f"{kernel.size:,}",
            f"{kernel.target:.1%}",
            f"{kernel.achieved:.1%}",
        ]
        if report.pattern:
            row.append(
                "ok" if kernel.pattern_violations == 0 else f"{kernel.pattern_violations} bad"
            )
        table.add_row(*row)
    console.print(table)
    console.print(
        f"sparsity {report.overall:.2%} over {report.pruned_size:,} pruned weights "
        f"(target {report.sparsity:.2%}; all kernels {report.all_kernels:.2%}); "
        f"{len(report.skipped)} kernel(s) left dense"
    )
    accuracy = run.accuracy
    if accuracy is not None:
        console.print(
            f"accuracy {accuracy['dense_top1']:.2%} dense -> {accuracy['top1']:.2%} pruned "
            f"({accuracy['dataset']} validation, {accuracy['samples']} samples)"
        )
    console.print(f"wrote {run.output} and {run.manifest}")
    if run.options.get("policy") == "xnnpack":  # the sparse path needs sparse storage
        console.print(
            "next: edgeprune convert OUT -o OUT.tflite --sparse-weights, then edgeprune "
            "inspect OUT.tflite (section 'XNNPACK sparse path')"
        )
