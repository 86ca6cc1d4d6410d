"""`edgeprune inspect`: what is inside a .tflite, .keras/.h5 or SavedModel, as tables or JSON."""

from __future__ import annotations

from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from edgeprune.cli.common import console, print_json


def register(app: typer.Typer) -> None:
    """Add `inspect` to the app."""

    @app.command("inspect")
    def inspect_command(
        model: str = typer.Argument(..., help=".tflite, .keras/.h5 or SavedModel directory."),
        json_output: bool = typer.Option(False, "--json", help="Print one JSON document."),
        pattern: str | None = typer.Option(
            None, "--pattern", help="Check every weight tensor against N:M or block:RxC."
        ),
    ) -> None:
        """Parameters, sparsity, sizes, ops, inputs/outputs and quantization of a model."""
        from edgeprune.workflows.inspection import inspect_model
        from edgeprune.xnnpack.pattern_check import check_pattern_option, pattern_section

        parsed = check_pattern_option(model, pattern)  # a bad --pattern fails before any work
        report = inspect_model(model)
        if parsed is not None:
            report["pattern"] = pattern_section(model, parsed)
        if json_output:
            print_json(report)
            return
        print_report(report)


def print_report(report: dict[str, Any]) -> None:
    """Human view of an `inspect_model` report."""
    console.print(
        f"[bold]{report['path']}[/bold]  {report['format']}, {report['size_bytes']:,} bytes "
        f"({report['gzip_bytes']:,} gzipped)"
    )
    if report.get("sha256"):
        console.print(f"sha256 {report['sha256']}")
    _io_table(report)
    if report["format"] == "tflite":
        _tflite_tables(report)
    elif report["format"] == "savedmodel":
        _variables_table(report)
    else:
        _keras_table(report)
    _manifest(report.get("manifest"))
    _channels_change(report.get("manifest"))  # before -> after, recorded by `channels`
    from edgeprune.cli.xnnpack_cmd import print_pattern, print_sparse_path

    print_sparse_path(report.get("xnnpack"))
    print_pattern(report.get("pattern"))


def _io_table(report: dict[str, Any]) -> None:
    table = Table(title="inputs and outputs", title_justify="left")
    for column in ("", "name", "shape", "dtype", "quantization"):
        table.add_column(column)
    for kind in ("inputs", "outputs"):
        for item in report.get(kind, []):
            table.add_row(
                kind[:-1],
                item["name"],
                str(item["shape"]),
                item["dtype"],
                _quant_text(item.get("quantization")),
            )
    console.print(table)


def _tflite_tables(report: dict[str, Any]) -> None:
    totals = report["totals"]
    console.print(
        f"quantization [bold]{report['quantization']}[/bold]; weights stored "
        f"{'sparse' if report['sparse_weights_stored'] else 'dense'} "
        f"({report['densify_ops']} DENSIFY op(s)); kernel sparsity "
        f"{totals['kernel_sparsity']:.1%} of {totals['kernel_params']:,}; "
        f"{totals['params']:,} weight+bias values, {totals['stored_values']:,} stored"
    )
    ops = Table(title=f"ops ({report['op_count']})", title_justify="left")
    ops.add_column("op")
    ops.add_column("count", justify="right")
    for name, count in report["ops"].items():
        ops.add_row(name, str(count))
    console.print(ops)
    weights = Table(title="weight tensors", title_justify="left", box=box.SIMPLE_HEAD)
    columns = (
        "#",
        "used by",
        "role",
        "shape",
        "dtype",
        "params",
        "stored",
        "zeros",
        "quantization",
    )
    for column in columns:
        numeric = column in ("#", "params", "stored", "zeros")
        weights.add_column(column, justify="right" if numeric else "left")
    for w in report["weights"]:
        weights.add_row(
            str(w["index"]),
            w["op"] or "",
            w["role"],
            "×".join(str(d) for d in w["shape"]),
            w["dtype"].lower(),
            f"{w['params']:,}",
            f"{w['stored_values']:,} sparse" if w["sparse_stored"] else "dense",
            f"{w['sparsity']:.1%}",
            _quant_text(w["quantization"]),
        )
    _print_wide(weights)


def _keras_table(report: dict[str, Any]) -> None:
    console.print(
        f"{report['params']:,} params, {report['macs']:,} MACs per sample, prunable kernels "
        f"{report['kernel_sparsity']:.1%} zero"
    )
    table = Table(title="layers", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("layer", "type", "params", "MACs", "kernel", "zeros"):
        table.add_column(column, justify="left" if column in ("layer", "type") else "right")
    for layer in report["layers"]:
        table.add_row(
            layer["name"],
            layer["class_name"],
            f"{layer['params']:,}",
            f"{layer['macs']:,}",
            f"{layer['kernel_size']:,}" if layer["kernel_size"] else "",
            f"{layer['kernel_sparsity']:.1%}" if layer["kernel_size"] else "",
        )
    _print_wide(table)


def _variables_table(report: dict[str, Any]) -> None:
    console.print(f"{report['params']:,} variable values")
    table = Table(title="variables", title_justify="left")
    for column in ("variable", "shape", "params", "zeros"):
        table.add_column(column, justify="right" if column in ("params", "zeros") else "left")
    for v in report["variables"]:
        table.add_row(v["name"], str(v["shape"]), f"{v['params']:,}", f"{v['sparsity']:.1%}")
    console.print(table)


def _manifest(manifest: dict[str, Any] | None) -> None:
    if manifest is None:
        console.print("no manifest beside the model")
        return
    if "error" in manifest:
        console.print(f"manifest: {manifest['error']}")
        return
    table = Table(title="manifest", title_justify="left", show_header=False)
    table.add_column("field")
    table.add_column("value")
    for key in ("step", "quantization", "options", "sparsity", "accuracy", "source", "created_at"):
        value = manifest.get(key)
        if key == "sparsity" and isinstance(value, dict):
            value = (
                f"overall {value.get('overall', 0):.1%} over {len(value.get('layers', {}))} layers"
            )
        table.add_row(key, str(value))
    console.print(table)


def _channels_change(manifest: dict[str, Any] | None) -> None:
    """Params and MACs before -> after, recorded by `edgeprune channels` (owned by channels)."""
    from edgeprune.channels.report import size_change_from_manifest

    if not manifest or "error" in manifest:
        return
    change = size_change_from_manifest(manifest)
    if change is None:
        return
    for key, label in (("params", "params"), ("macs", "MACs")):
        item = change[key]
        ratio = f" ({item['ratio']:.2f}×)" if item.get("ratio") is not None else ""
        console.print(f"channels: {label} {item['before']:,} → {item['after']:,}{ratio}")


def _print_wide(table: Table) -> None:
    """Tables of tensors need ~110 columns; a pipe or file gets them rather than wrapping."""
    if console.is_terminal:
        console.print(table)
    else:
        Console(highlight=False, width=max(console.width, 120)).print(table)


def _quant_text(quant: dict[str, Any] | None) -> str:
    if not quant:
        return ""
    if quant.get("per_axis"):
        return f"axis {quant['axis']} ×{quant['channels']}, s {quant['scale_min']:.2g}..{quant['scale_max']:.2g}"
    return f"s {quant['scale']:.3g} zp {quant['zero_point']}"
