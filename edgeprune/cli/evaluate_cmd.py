"""`edgeprune evaluate`: accuracy of any model on a dataset, and parity with a reference."""

from __future__ import annotations

from typing import Optional

import typer

from edgeprune.cli.common import console, print_json
from edgeprune.cli.options import flag
from edgeprune.text import percent
from edgeprune.tflite.options import EvaluateOptions


def register(app: typer.Typer) -> None:
    """Add `evaluate` to the app."""

    @app.command("evaluate")
    def evaluate_command(
        model: str = typer.Argument(..., help=".tflite, .keras/.h5 or SavedModel directory."),
        data: str = flag(EvaluateOptions, "data"),
        reference: Optional[str] = flag(EvaluateOptions, "reference"),
        batch_size: int = flag(EvaluateOptions, "batch_size"),
        custom_objects: Optional[str] = flag(EvaluateOptions, "custom_objects"),
        json_output: bool = typer.Option(False, "--json", help="Print one JSON document."),
    ) -> None:
        """Top-1 (and top-5) on the validation split; with --reference, output parity."""
        from edgeprune.tflite.evaluation import evaluate

        report = evaluate(
            model,
            data,
            reference=reference,
            batch_size=batch_size,
            custom_objects=custom_objects,
        )
        if json_output:
            print_json(report.to_dict())
            return
        line = f"{report.model}: top-1 {percent(report.top1)}"
        if report.top5 is not None:
            line += f", top-5 {percent(report.top5)}"
        console.print(
            f"{line} on {report.dataset} ({report.samples} {report.split} samples, "
            f"{report.classes} classes)"
        )
        if report.runtime:
            rt = report.runtime
            console.print(f"  runtime {rt['name']} {rt['version']}, {rt['delegate']} kernels")
        parity = report.reference
        if parity is not None:
            console.print(
                f"  vs {parity.reference} (top-1 {percent(parity.reference_top1)}): max |diff| "
                f"{parity.max_abs_diff:.3g}, mean |diff| {parity.mean_abs_diff:.3g}, "
                f"top-1 agreement {percent(parity.top1_agreement)}"
            )
        for note in report.notes:
            console.print(f"  note: {note}")
