"""`edgeprune convert`: Keras / SavedModel -> quantized `.tflite` with a manifest."""

from __future__ import annotations

from typing import Optional

import typer

from edgeprune.cli.common import console, print_json
from edgeprune.cli.options import flag
from edgeprune.text import metric_value, percent
from edgeprune.tflite.options import ConvertOptions


def register(app: typer.Typer) -> None:
    """Add `convert` to the app."""

    @app.command("convert")
    def convert_command(
        model: str = typer.Argument(..., help="Keras model (.keras/.h5) or SavedModel directory."),
        output: str = typer.Option(..., "--output", "-o", help="Output .tflite path."),
        quantize: str = flag(ConvertOptions, "quantize", "--quantize", "-q"),
        sparse_weights: Optional[bool] = flag(
            ConvertOptions, "sparse_weights", "--sparse-weights/--dense-weights"
        ),
        data: Optional[str] = flag(ConvertOptions, "data"),
        io: str = flag(ConvertOptions, "io"),
        calibration_samples: Optional[int] = flag(ConvertOptions, "calibration_samples"),
        keep_float: list[str] = flag(ConvertOptions, "keep_float", default=[], metavar="GLOB"),
        custom_objects: Optional[str] = flag(ConvertOptions, "custom_objects"),
        task: Optional[str] = flag(ConvertOptions, "task"),
        metric: Optional[str] = flag(ConvertOptions, "metric", metavar="FILE.py:fn"),
        decode: Optional[str] = flag(ConvertOptions, "decode"),
        json_output: bool = typer.Option(False, "--json", help="Print one JSON document."),
    ) -> None:
        """Convert a model to .tflite, quantized and with sparse weights when it pays."""
        from edgeprune.tflite.conversion import convert

        report = convert(
            model,
            output,
            quantize=quantize,
            sparse_weights=sparse_weights,
            data=data,
            io=io,
            calibration_samples=calibration_samples,
            keep_float=keep_float,
            custom_objects=custom_objects,
            task=task,
            metric=metric,
            decode=decode,
        )
        if json_output:
            print_json(report.to_dict())
            return
        sparse = "sparse" if report.sparse_weights else "dense"
        console.print(
            f"wrote {report.output} ({report.size_bytes:,} bytes, {report.gzip_bytes:,} gzipped) "
            f"in {report.seconds:.1f} s"
        )
        console.print(
            f"  quantize {report.quantize}, io {report.io}, weights {sparse}: "
            f"{report.sparse_weights_reason}"
        )
        if report.keep_float:
            console.print(f"  kept float: {', '.join(report.float_layers) or 'no layer'}")
        if report.sparse_weights:
            console.print(
                f"  {report.sparse_tensors} tensor(s) stored sparse, {report.densify_ops} DENSIFY op(s)"
            )
        if report.accuracy and "top1" in report.accuracy:
            acc = report.accuracy
            line = (
                f"  top-1 {percent(acc['top1'])} on {acc['dataset']} "
                f"({acc['samples']} validation samples)"
            )
            if "source_top1" in acc:
                line += f"; source model {percent(acc['source_top1'])}"
            console.print(line)
        elif report.accuracy and report.accuracy.get("metric_info"):
            acc = report.accuracy
            primary = acc["metric_info"][0]
            line = (
                f"  {primary['label']} {metric_value(acc['metrics'].get(primary['name']), primary['unit'])}"
                f" on {acc['dataset']} ({acc['samples']} validation samples, {acc['task']})"
            )
            if acc.get("source_metrics"):
                source = acc["source_metrics"].get(primary["name"])
                line += f"; source model {metric_value(source, primary['unit'])}"
            console.print(line)
        elif report.accuracy and report.accuracy.get("note"):
            console.print(f"  note: {report.accuracy['note']}")
        parity = report.parity or {}
        if "max_abs_diff" in parity:
            console.print(
                f"  parity with the source: max |diff| {parity['max_abs_diff']:.4g}, mean "
                f"{parity['mean_abs_diff']:.4g} on {parity['samples']} {parity['inputs']}"
            )
        elif parity.get("note"):
            console.print(f"  parity: {parity['note']}")
        for note in report.notes:
            console.print(f"  note: {note}")
        console.print(f"  manifest {report.manifest}")
