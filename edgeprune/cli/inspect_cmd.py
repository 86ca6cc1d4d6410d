"""`edgeprune inspect`: what is inside a .tflite, .keras/.h5 or SavedModel, as tables or JSON."""

from __future__ import annotations

from typing import Any

import typer

from edgeprune.cli.common import console, print_json
from edgeprune.cli.options import flag
from edgeprune.cli.present_table import Name, compact_table, print_table
from edgeprune.options import CustomObjectsFields
from edgeprune.text import percent


def register(app: typer.Typer) -> None:
    """Add `inspect` to the app."""

    @app.command("inspect")
    def inspect_command(
        model: str = typer.Argument(..., help=".tflite, .keras/.h5 or SavedModel directory."),
        json_output: bool = typer.Option(False, "--json", help="Print one JSON document."),
        pattern: str | None = typer.Option(
            None, "--pattern", help="Check every weight tensor against N:M or block:RxC."
        ),
        custom_objects: str | None = flag(CustomObjectsFields, "custom_objects"),
    ) -> None:
        """Parameters, sparsity, sizes, ops, inputs/outputs and quantization of a model."""
        from edgeprune.workflows.inspection import inspect_model
        from edgeprune.xnnpack.pattern_check import check_pattern_option, pattern_section

        parsed = check_pattern_option(model, pattern)  # a bad --pattern fails before any work
        report = inspect_model(model, custom_objects)
        if parsed is not None:
            report["pattern"] = pattern_section(model, parsed, custom_objects)
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
    table = compact_table("inputs and outputs", title_justify="left")
    for column in ("", "name", "shape", "dtype", "quantization"):
        table.add_column(column)
    for kind in ("inputs", "outputs"):
        for item in report.get(kind, []):
            table.add_row(
                kind[:-1],
                Name(item["name"]),
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
    ops = compact_table(f"ops ({report['op_count']})", title_justify="left")
    ops.add_column("op")
    ops.add_column("count", justify="right")
    for name, count in report["ops"].items():
        ops.add_row(Name(name), str(count))
    print_table(ops)
    weights = compact_table("weight tensors", title_justify="left")
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
        weights.add_column(column, justify="right" if numeric else "left", no_wrap=numeric)
    for w in report["weights"]:
        weights.add_row(
            str(w["index"]),
            Name(w["op"] or ""),
            w["role"],
            "×".join(str(d) for d in w["shape"]),
            w["dtype"].lower(),
            f"{w['params']:,}",
            f"{w['stored_values']:,} sparse" if w["sparse_stored"] else "dense",
            f"{w['sparsity']:.1%}",
            _quant_text(w["quantization"]),
        )
    print_table(weights)


def _keras_table(report: dict[str, Any]) -> None:
    console.print(
        f"{report['params']:,} params, {report['macs']:,} MACs per sample, prunable kernels "
        f"{report['kernel_sparsity']:.1%} zero"
    )
    table = compact_table("layers", title_justify="left")
    for column in ("layer", "type", "params", "MACs", "kernel", "zeros"):
        text = column in ("layer", "type")
        table.add_column(column, justify="left" if text else "right", no_wrap=not text)
    for layer in report["layers"]:
        table.add_row(
            Name(layer["name"]),
            Name(layer["class_name"]),
            f"{layer['params']:,}",
            f"{layer['macs']:,}",
            f"{layer['kernel_size']:,}" if layer["kernel_size"] else "",
            f"{layer['kernel_sparsity']:.1%}" if layer["kernel_size"] else "",
        )
    print_table(table)


def _variables_table(report: dict[str, Any]) -> None:
    console.print(f"{report['params']:,} variable values")
    table = compact_table("variables", title_justify="left")
    for column in ("variable", "shape", "params", "zeros"):
        numeric = column in ("params", "zeros")
        table.add_column(column, justify="right" if numeric else "left", no_wrap=numeric)
    for v in report["variables"]:
        table.add_row(Name(v["name"]), str(v["shape"]), f"{v['params']:,}", f"{v['sparsity']:.1%}")
    print_table(table)


def _manifest(manifest: dict[str, Any] | None) -> None:
    if manifest is None:
        console.print("no manifest beside the model")
        return
    if "error" in manifest:
        console.print(f"manifest: {manifest['error']}")
        return
    table = compact_table("manifest", title_justify="left", show_header=False)
    table.add_column("field")
    table.add_column("value")
    for key in ("step", "quantization", "options", "sparsity", "accuracy", "source", "created_at"):
        table.add_row(key, _manifest_value(key, manifest.get(key)))
    print_table(table)


def _manifest_value(key: str, value: Any) -> str:
    """A manifest field in words: accuracy in percent, options as k=v, the source's sha short."""
    from rich.markup import escape

    if key == "sparsity" and isinstance(value, dict):
        return f"overall {value.get('overall', 0):.1%} over {len(value.get('layers', {}))} layers"
    if key == "accuracy" and isinstance(value, dict) and value.get("top1") is not None:
        where = f"{value.get('dataset', '?')} {value.get('split', '')}".strip()
        text = f"top-1 {percent(value['top1'])} on {where}, {value.get('samples', '?')} samples"
        for before in ("dense_top1", "source_top1"):
            if value.get(before) is not None:
                text += f" ({before.split('_')[0]} {percent(value[before])})"
        return escape(text)
    if key == "source" and isinstance(value, dict):
        sha = str(value.get("sha256") or "")
        return escape(f"{value.get('path')}" + (f" (sha256 {sha[:12]}…)" if sha else ""))
    if isinstance(value, dict):
        return escape(", ".join(f"{k}={v}" for k, v in value.items()))
    return escape(str(value))


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


def _quant_text(quant: dict[str, Any] | None) -> str:
    if not quant:
        return ""
    if quant.get("per_axis"):
        return f"axis {quant['axis']} ×{quant['channels']}, s {quant['scale_min']:.2g}..{quant['scale_max']:.2g}"
    return f"s {quant['scale']:.3g} zp {quant['zero_point']}"
