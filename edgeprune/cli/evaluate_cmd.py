"""`edgeprune evaluate`: the task's metrics of any model on a dataset, and parity with a reference."""

from __future__ import annotations

from typing import Any, Optional

import typer

from edgeprune.cli.common import console, print_json
from edgeprune.cli.options import flag
from edgeprune.text import metric_value, percent
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
        task: Optional[str] = flag(EvaluateOptions, "task"),
        metric: Optional[str] = flag(EvaluateOptions, "metric"),
        decode: Optional[str] = flag(EvaluateOptions, "decode"),
        json_output: bool = typer.Option(False, "--json", help="Print one JSON document."),
    ) -> None:
        """The task's metrics on the validation split; with --reference, output parity."""
        from edgeprune.tflite.evaluation import evaluate

        report = evaluate(
            model,
            data,
            reference=reference,
            batch_size=batch_size,
            custom_objects=custom_objects,
            task=task,
            metric=metric,
            decode=decode,
        )
        if json_output:
            print_json(report.to_dict())
            return
        units = {m["name"]: m["unit"] for m in report.metric_info}
        shown = ", ".join(
            f"{m['label']} {metric_value(report.metrics.get(m['name']), m['unit'])}"
            for m in report.metric_info
            if m["name"] in report.metrics
        )
        what = f"{report.classes} classes" if report.classes is not None else report.task
        if report.task is None:
            console.print(
                f"{report.model}: {report.samples} {report.split} samples of {report.dataset} "
                "(no labels)"
            )
        else:
            console.print(
                f"{report.model}: {shown} on {report.dataset} ({report.samples} {report.split} "
                f"samples, {what})"
            )
        extras = {k: v for k, v in report.metrics.items() if "/" in k}
        if extras:
            console.print("  " + ", ".join(f"{k} {_extra(k, v, units)}" for k, v in extras.items()))
        if report.runtime:
            rt = report.runtime
            console.print(f"  runtime {rt['name']} {rt['version']}, {rt['delegate']} kernels")
        parity = report.reference
        if parity is not None:
            line = f"  vs {parity.reference}"
            if parity.reference_metrics and report.metric_info:
                primary = report.metric_info[0]
                value = parity.reference_metrics.get(primary["name"])
                line += f" ({primary['label']} {metric_value(value, primary['unit'])})"
            line += (
                f": max |diff| {parity.max_abs_diff:.3g}, mean |diff| {parity.mean_abs_diff:.3g}"
            )
            if parity.top1_agreement is not None:
                line += f", top-1 agreement {percent(parity.top1_agreement)}"
            console.print(line)
            if len(parity.outputs) > 1:
                for out in parity.outputs:
                    console.print(
                        f"    {out.name}: max |diff| {out.max_abs_diff:.3g}, "
                        f"mean |diff| {out.mean_abs_diff:.3g}"
                    )
        for note in report.notes:
            console.print(f"  note: {note}")


def _extra(key: str, value: Any, units: dict[str, str]) -> str:
    """A per-output or per-class number ("rmse/speed", "iou/road") in its metric's unit;
    a family the task does not list (iou/ under miou) takes the deciding metric's unit."""
    default = next(iter(units.values()), "value")
    return metric_value(value, units.get(key.split("/", 1)[0], default))
