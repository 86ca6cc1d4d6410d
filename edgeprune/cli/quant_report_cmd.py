"""`edgeprune quant-report MODEL.keras --data D`: which layers int8 hurts, and what float costs."""

from __future__ import annotations

from typing import Any, Optional

import typer

from edgeprune.cli.common import (
    accept_option,
    console,
    db_option,
    deploy_options,
    device_option,
    inventory_option,
    json_option,
    print_json,
    select_devices,
)
from edgeprune.cli.options import flag
from edgeprune.text import metric_value
from edgeprune.tflite.options import QuantReportOptions


def register(app: typer.Typer) -> None:
    """Add `quant-report`."""

    @app.command("quant-report")
    def quant_report_command(
        model: str = typer.Argument(..., help="Keras model (.keras/.h5) to quantize."),
        data: Optional[str] = flag(QuantReportOptions, "data"),
        top: int = flag(QuantReportOptions, "top"),
        keep: int = flag(QuantReportOptions, "keep"),
        calibration_samples: Optional[int] = flag(QuantReportOptions, "calibration_samples"),
        samples: int = flag(QuantReportOptions, "samples"),
        runs: int = flag(QuantReportOptions, "runs"),
        custom_objects: Optional[str] = flag(QuantReportOptions, "custom_objects"),
        device: list[str] = device_option(),
        inventory: str = inventory_option(),
        accept_new_host_key: bool = accept_option(),
        db: str = db_option(),
        work_dir: Optional[str] = typer.Option(
            None, "--work-dir", help="Where the int8 and selective .tflite files go."
        ),
        as_json: bool = json_option(),
    ) -> None:
        """Per-layer int8 error (TF's QuantizationDebugger), worst first; what keeping the
        worst layers float recovers in accuracy and costs in latency on the device."""
        from edgeprune.workflows.bench import DEFAULT_STORE
        from edgeprune.workflows.quant_report import check_model, quant_report

        options = QuantReportOptions.create(
            data=data,
            top=top,
            keep=keep,
            calibration_samples=calibration_samples,
            samples=samples,
            runs=runs,
            custom_objects=custom_objects,
        )
        check_model(model, options)  # before devices are looked up
        devices = select_devices(inventory, device, None, False, default_local=True)
        report = quant_report(
            model,
            options=options,
            devices=devices,
            store=db or DEFAULT_STORE,
            work_dir=work_dir,
            deploy=deploy_options(None, accept_new_host_key, None),
        )
        if as_json:
            print_json(report.to_dict())
            return
        print_report(report.to_dict())


def print_report(report: dict[str, Any]) -> None:
    """The worst layers, then the metric of float, int8 and selective, then the latency cost."""
    metric = report["sort_metric"]
    console.print(
        f"{report['model']}: {report['quantized_ops']} quantized op(s), worst first by {metric} "
        f"(TF QuantizationDebugger on {report['samples']} validation samples, "
        f"{report['calibration_samples']} calibration samples)"
    )
    console.print(f"  {'layer':<26} {'op':<17} {'rel. error':>10} {'rmse/scale':>10} {'share':>6}")
    for row in report["layers"]:
        m = row["metrics"]
        layer = "+".join(row["layers"]) if row["layers"] else row["tensor"]
        share = row.get("latency_share")
        console.print(
            f"  {layer[:26]:<26} {row['op'][:17]:<17} {m.get(metric, float('nan')):>10.4g} "
            f"{m.get('rmse_over_scale', float('nan')):>10.3f} "
            f"{'–' if share is None else f'{100 * share:.0f} %':>6}"
        )
    name = report.get("metric")
    if name and report.get("float_metrics") and report.get("int8_metrics"):
        unit = report.get("metric_unit")

        def show(value: float | None) -> str:
            return metric_value(value, unit)

        console.print(
            f"  {name}: float {show(report['float_metrics'][name])}, int8 "
            f"{show(report['int8_metrics'][name])}"
        )
        selective = report.get("selective")
        if selective:
            line = (
                f"  keep float {', '.join(selective['keep_float'])} "
                f"(float layers: {', '.join(selective['float_layers'])}): "
                f"{name} {show(selective['metrics'][name])}"
            )
            if selective.get("recovered_points") is not None:
                low, high = selective["recovered_ci"]
                line += (
                    f", recovers {selective['recovered_points']:+.1f} points "
                    f"({low:+.1f} to {high:+.1f} at 95 %, paired)"
                )
            console.print(line)
            for cost in selective["latency"]:
                if cost["error"]:
                    console.print(f"  latency on {cost['device']}: {cost['error']}")
                    continue
                ci = cost["slowdown_ci"]
                interval = f" ({ci[0]:.2f}–{ci[1]:.2f})" if ci else ""
                console.print(
                    f"  latency on {cost['device']} ({cost['threads']} thread(s)): int8 p50 "
                    f"{cost['int8_p50_ms']:.3f} ms, selective {cost['selective_p50_ms']:.3f} ms: "
                    f"× {cost['slowdown']:.2f}{interval} ({cost['verdict'] or 'no interval'})"
                )
    for note in report["notes"]:
        console.print(f"  note: {note}")
