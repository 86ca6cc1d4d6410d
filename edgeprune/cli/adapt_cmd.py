"""`edgeprune adapt`: prune to a latency target measured on the device (NetAdapt)."""

from __future__ import annotations

from typing import Optional

import typer

from edgeprune.adapt.options import AdaptOptions
from edgeprune.cli.common import print_json, quiet_option
from edgeprune.cli.given import given_options
from edgeprune.cli.options import flag
from edgeprune.cli.present_adapt import print_adapt, progress_printer


def register(app: typer.Typer) -> None:
    """Add `adapt` to the app."""

    @app.command("adapt")
    def adapt_command(
        ctx: typer.Context,
        model: str = typer.Argument(..., help="Keras model (.keras or .h5)."),
        output: str = typer.Option(..., "--output", "-o", help="Output .keras path."),
        target_latency: Optional[float] = flag(AdaptOptions, "target_latency", metavar="MS"),
        target_speedup: Optional[float] = flag(AdaptOptions, "target_speedup", metavar="X"),
        data: Optional[str] = flag(AdaptOptions, "data"),
        device: str = flag(AdaptOptions, "device"),
        quantize: str = flag(AdaptOptions, "quantize"),
        threads: int = flag(AdaptOptions, "threads"),
        granularity: int = flag(AdaptOptions, "granularity"),
        min_filters: int = flag(AdaptOptions, "min_filters"),
        criterion: str = flag(AdaptOptions, "criterion"),
        step_reduction: float = flag(AdaptOptions, "step_reduction"),
        step_decay: float = flag(AdaptOptions, "step_decay"),
        max_iterations: int = flag(AdaptOptions, "max_iterations"),
        short_epochs: int = flag(AdaptOptions, "short_epochs"),
        long_epochs: int = flag(AdaptOptions, "long_epochs"),
        batch_size: int = flag(AdaptOptions, "batch_size"),
        learning_rate: float = flag(AdaptOptions, "learning_rate"),
        learning_rate_decay: str = flag(AdaptOptions, "learning_rate_decay"),
        seed: int = flag(AdaptOptions, "seed"),
        custom_objects: Optional[str] = flag(AdaptOptions, "custom_objects"),
        table_runs: int = flag(AdaptOptions, "table_runs"),
        table_remeasures: int = flag(AdaptOptions, "table_remeasures"),
        runs: int = flag(AdaptOptions, "runs"),
        cluster: Optional[str] = flag(AdaptOptions, "cluster", metavar="ADDRESS"),
        task: Optional[str] = flag(AdaptOptions, "task"),
        metric: Optional[str] = flag(AdaptOptions, "metric", metavar="FILE.py:fn"),
        decode: Optional[str] = flag(AdaptOptions, "decode"),
        loss: Optional[str] = flag(AdaptOptions, "loss"),
        distill: bool = flag(AdaptOptions, "distill"),
        temperature: float = flag(AdaptOptions, "temperature"),
        alpha: float = flag(AdaptOptions, "alpha"),
        table: Optional[str] = typer.Option(
            None, "--table", help="Lookup-table file (default: adapt-table.db in the data dir)."
        ),
        db: Optional[str] = typer.Option(
            None, "--db", help="Results DB for the measurements (default: the results DB)."
        ),
        json_output: bool = typer.Option(False, "--json", help="Print one JSON document."),
        quiet: bool = quiet_option(),
    ) -> None:
        """Measure the board, then remove filters until the model meets a latency target."""
        from edgeprune.workflows.adapt import adapt_model_file
        from edgeprune.workflows.bench import DEFAULT_STORE

        values = {k: v for k, v in locals().items() if k in AdaptOptions.model_fields}
        chosen = given_options(ctx, values)
        report = adapt_model_file(
            model,
            output,
            store=db if db is not None else DEFAULT_STORE,
            table=table,
            progress=None if quiet or json_output else progress_printer(),
            **chosen,
        )
        if json_output:
            print_json(report.to_dict())
            return
        print_adapt(report.to_dict())
