"""`edgeprune qat`: quantization-aware fine-tuning into a QAT .keras that converts to int8."""

from __future__ import annotations

from typing import Any, Optional

import typer

from edgeprune.cli.common import console, print_json, quiet_option
from edgeprune.cli.given import given_options
from edgeprune.cli.options import flag
from edgeprune.cli.present_progress import training_progress
from edgeprune.quantize.options import QatOptions
from edgeprune.text import metric_value


def register(app: typer.Typer) -> None:
    """Add `qat` to the app."""

    @app.command("qat")
    def qat_command(
        ctx: typer.Context,
        model: str = typer.Argument(..., help="Float Keras model (.keras or .h5)."),
        output: str = typer.Option(..., "--output", "-o", help="Output QAT .keras path."),
        data: Optional[str] = flag(QatOptions, "data"),
        epochs: int = flag(QatOptions, "epochs"),
        batch_size: int = flag(QatOptions, "batch_size"),
        learning_rate: float = flag(QatOptions, "learning_rate"),
        seed: int = flag(QatOptions, "seed"),
        preserve_sparsity: bool = flag(
            QatOptions, "preserve_sparsity", "--preserve-sparsity/--no-preserve-sparsity"
        ),
        distill: bool = flag(QatOptions, "distill"),
        temperature: float = flag(QatOptions, "temperature"),
        alpha: float = flag(QatOptions, "alpha"),
        custom_objects: Optional[str] = flag(QatOptions, "custom_objects"),
        task: Optional[str] = flag(QatOptions, "task"),
        metric: Optional[str] = flag(QatOptions, "metric", metavar="FILE.py:fn"),
        decode: Optional[str] = flag(QatOptions, "decode"),
        loss: Optional[str] = flag(QatOptions, "loss"),
        json_output: bool = typer.Option(False, "--json", help="Print one JSON document."),
        quiet: bool = quiet_option(),
    ) -> None:
        """Fine-tune with simulated int8 (sparsity kept); then `convert --quantize int8`."""
        from edgeprune.manifest import manifest_path
        from edgeprune.quantize.pipeline import qat_file

        values = {k: v for k, v in locals().items() if k in QatOptions.model_fields}
        chosen = given_options(ctx, values)
        with training_progress(quiet):
            target, report = qat_file(model, output, **chosen)
        if json_output:
            print_json(
                {"output": str(target), "manifest": str(manifest_path(target)), **report.to_dict()}
            )
            return
        print_summary(report.to_dict(), str(target), str(manifest_path(target)))


def print_summary(report: dict[str, Any], output: str, manifest: str) -> None:
    """Human view: what was quantized, folded and fused, sparsity kept, score before -> after."""
    plan = report["plan"]
    console.print(
        f"quantized {len(plan['quantized'])} kernel layer(s); folded "
        f"{len(plan['folded'])} BatchNormalization, fused {len(plan['fused'])} activation(s)"
    )
    sparsity = report["sparsity"]
    console.print(
        f"kernel zeros {sparsity['before']['overall']:.1%} before, {sparsity['overall']:.1%} "
        f"after{' (kept)' if sparsity['kept'] else ''}"
    )
    accuracy = report.get("accuracy")
    if accuracy:
        unit = accuracy.get("unit")
        console.print(
            f"{accuracy.get('label', 'top-1')} on {accuracy['dataset']}: "
            f"{metric_value(accuracy.get('value_before_qat'), unit)} float, "
            f"{metric_value(accuracy.get('value'), unit)} after {accuracy['epochs']} epoch(s) "
            "of QAT (simulated int8)"
        )
    for note in report["notes"]:
        console.print(f"note: {note}")
    console.print(
        f"wrote {output} (manifest {manifest}); next: edgeprune convert {output} "
        "-o OUT.tflite --quantize int8 --data DATASET"
    )
