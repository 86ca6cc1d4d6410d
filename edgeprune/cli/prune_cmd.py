"""`edgeprune prune`: magnitude pruning of a Keras model, one-shot or gradual with --data."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import typer
from rich.console import RenderableType

from edgeprune.cli.common import console, print_json, quiet_option
from edgeprune.cli.given import given_options
from edgeprune.cli.options import distillation_text, flag
from edgeprune.cli.present_progress import training_progress
from edgeprune.prune.options import PruneOptions


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("prune")(prune)


def prune(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Keras model to prune (.keras or .h5)."),
    output: str = typer.Option(..., "-o", "--output", help="Pruned model to write (.keras)."),
    sparsity: float | None = flag(PruneOptions, "sparsity"),
    scope: str = flag(PruneOptions, "scope"),
    max_layer_sparsity: float | None = flag(PruneOptions, "max_layer_sparsity"),
    include: list[str] = flag(PruneOptions, "include", default=[], metavar="GLOB"),
    exclude: list[str] = flag(PruneOptions, "exclude", default=[], metavar="GLOB"),
    include_types: list[str] = flag(
        PruneOptions, "include_types", "--include-type", default=[], metavar="TYPE"
    ),
    min_params: int = flag(PruneOptions, "min_params"),
    pattern: str | None = flag(PruneOptions, "pattern"),
    policy: str = flag(PruneOptions, "policy"),
    data: str | None = flag(PruneOptions, "data"),
    epochs: int = flag(PruneOptions, "epochs", show_default=False),
    schedule: str = flag(PruneOptions, "schedule", show_default=False),
    begin_step: int = flag(PruneOptions, "begin_step", show_default=False),
    end_step: int | None = flag(PruneOptions, "end_step"),
    frequency: int | None = flag(PruneOptions, "frequency"),
    initial_sparsity: float = flag(PruneOptions, "initial_sparsity", show_default=False),
    power: float = flag(PruneOptions, "power", show_default=False),
    batch_size: int = flag(PruneOptions, "batch_size", show_default=False),
    learning_rate: float | None = flag(PruneOptions, "learning_rate", show_default=False),
    learning_rate_decay: str | None = flag(PruneOptions, "learning_rate_decay"),
    seed: int = flag(PruneOptions, "seed", show_default=False),
    tensorboard: str | None = flag(PruneOptions, "tensorboard", metavar="DIR"),
    custom_objects: str | None = flag(PruneOptions, "custom_objects"),
    task: str | None = flag(PruneOptions, "task"),
    metric: str | None = flag(PruneOptions, "metric", metavar="FILE.py:fn"),
    decode: str | None = flag(PruneOptions, "decode"),
    loss: str | None = flag(PruneOptions, "loss"),
    distill: bool = flag(PruneOptions, "distill"),
    temperature: float = flag(PruneOptions, "temperature"),
    alpha: float = flag(PruneOptions, "alpha"),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON document."),
    quiet: bool = quiet_option(),
) -> None:
    """Zero the smallest weights of a Keras model; writes OUT and OUT.json (manifest)."""
    from edgeprune.prune.model_file import prune_model_file

    values = dict(locals())
    chosen = given_options(ctx, {k: v for k, v in values.items() if k in PruneOptions.model_fields})
    with training_progress(quiet):
        run = prune_model_file(model, output, **chosen)
    if json_output:
        print_json(run.to_dict())
        return
    _print_run(run)


def _print_run(run: Any) -> None:
    from edgeprune.cli.present_table import Name, compact_table, print_table
    from edgeprune.prune.selection import describe_skipped

    report = run.report
    table = compact_table(f"pruned {run.source} ({report.scope}, {run.options['mode']})")
    table.add_column("layer")
    table.add_column("type")
    table.add_column("weights", justify="right", no_wrap=True)
    table.add_column("target", justify="right", no_wrap=True)
    table.add_column("achieved", justify="right", no_wrap=True)
    if report.pattern:
        table.add_column(report.pattern)
    for kernel in report.kernels:
        row: list[RenderableType] = [
            Name(kernel.layer),
            Name(kernel.class_name),
            f"{kernel.size:,}",
            f"{kernel.target:.1%}",
            f"{kernel.achieved:.1%}",
        ]
        if report.pattern:
            row.append(
                "ok" if kernel.pattern_violations == 0 else f"{kernel.pattern_violations} bad"
            )
        table.add_row(*row)
    print_table(table)
    dense = f"{len(report.skipped)} kernel(s) left dense"
    if report.skipped:
        dense += f" ({describe_skipped(report.skipped)})"
    console.print(
        f"sparsity {report.overall:.2%} over {report.pruned_size:,} pruned weights "
        f"(target {report.sparsity:.2%}; all kernels {report.all_kernels:.2%}); {dense}",
        soft_wrap=True,
    )
    if report.unknown_layers:  # the user's own layers: left as they are, and said so
        names = ", ".join(
            f"{u.layer} ({u.class_name}, {u.params:,} params)" for u in report.unknown_layers
        )
        console.print(f"custom layers left as they are: {names}", soft_wrap=True)
    accuracy = run.accuracy
    if accuracy is not None:
        from edgeprune.prune.task_training import metric_change_text

        console.print(
            f"{metric_change_text(accuracy, 'dense', 'pruned')} "
            f"({accuracy['dataset']} validation, {accuracy['samples']} samples)"
        )
    distillation = run.gradual.to_dict().get("distillation") if run.gradual else None
    if distillation:
        console.print(distillation_text(distillation, "the dense model"))
    console.print(f"wrote {run.output} and {run.manifest}", soft_wrap=True)
    if run.options.get("policy") == "xnnpack":  # the sparse path needs sparse storage
        keras_path = shlex.quote(str(run.output))
        tflite = shlex.quote(str(Path(run.output).with_suffix(".tflite")))
        console.print(
            f"next: edgeprune convert {keras_path} -o {tflite} --sparse-weights, then "
            f"edgeprune inspect {tflite} (section 'XNNPACK sparse path')",
            soft_wrap=True,
        )
