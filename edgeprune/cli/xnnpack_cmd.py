"""`edgeprune xnnpack-fix`, and how `inspect` prints XNNPACK findings."""

from __future__ import annotations

from typing import Any

import typer

from edgeprune.cli.common import console, print_json
from edgeprune.cli.present_table import Name, compact_table, print_table
from edgeprune.text import percent


def register(app: typer.Typer) -> None:
    """Add `xnnpack-fix`."""
    from edgeprune.cli.options import flag
    from edgeprune.xnnpack.fix_options import FixOptions

    @app.command("xnnpack-fix")
    def xnnpack_fix(
        model: str = typer.Argument(
            ..., help="Keras model (.keras/.h5), e.g. a stock MobileNetV2."
        ),
        output: str = typer.Option(..., "-o", "--output", help="Fixed model to write (.keras)."),
        data: str | None = flag(FixOptions, "data"),
        samples: int = flag(FixOptions, "samples"),
        seed: int = flag(FixOptions, "seed"),
        custom_objects: str | None = flag(FixOptions, "custom_objects"),
        json_output: bool = typer.Option(False, "--json", help="Print one JSON document."),
    ) -> None:
        """Rewrite asymmetric stride-2 padding so XNNPACK's sparse path can take the model."""
        from edgeprune.xnnpack.fix_file import fix_model_file

        run = fix_model_file(
            model, output, data=data, samples=samples, seed=seed, custom_objects=custom_objects
        )
        if json_output:
            print_json(run.to_dict())
            return
        _print_fix(run)


def _print_fix(run: Any) -> None:
    if run.rewrites:
        table = compact_table(f"xnnpack-fix {run.source}: {len(run.rewrites)} rewrite(s)")
        table.add_column("layer")
        table.add_column("change")
        for rewrite in run.rewrites:
            table.add_row(Name(rewrite.layer), rewrite.change)
        print_table(table)
    for note in run.notes:
        console.print(note)
    change = run.change
    if change is None:
        console.print(f"outputs: {run.inputs}")
    else:
        agreement = (
            f", top-1 agreement {percent(change['top1_agreement'])}"
            if change["top1_agreement"] is not None
            else ""
        )
        console.print(
            f"outputs moved: max |Δ| {change['max_abs']:.4g}, mean |Δ| {change['mean_abs']:.4g} "
            f"({change['relative']:.1%} of the mean |output|){agreement} on {run.inputs}; "
            "fine-tune it: edgeprune prune OUT --policy xnnpack --data DATASET"
        )
    if run.cluster_ready:
        console.print("XNNPACK sparse path: a sparse cluster can now form")
    else:
        console.print(f"XNNPACK sparse path: still no sparse cluster: {run.remaining[0]}")
    console.print(f"wrote {run.output} and {run.manifest}")


def print_sparse_path(section: dict[str, Any] | None) -> None:
    """The "XNNPACK sparse path" section of `inspect` (.tflite verdict or Keras prediction)."""
    if not section:
        return
    if section.get("predicted"):
        if section["cluster_ready"]:
            fraction = section.get("zero_fraction")
            zeros = f"; its 1x1 weights are {fraction:.1%} zero" if fraction is not None else ""
            console.print(
                f"XNNPACK sparse path (predicted from the layers): {section['formed']} cluster(s) "
                f"can form over {len(section['pointwise_layers'])} 1x1 conv(s){zeros} "
                "(needs > 66.7 % and weights stored sparse)"
            )
        else:
            first = section["problems"][0]["text"] if section["problems"] else "no cluster"
            console.print(f"XNNPACK sparse path (predicted from the layers): not possible: {first}")
        return
    colour = "green" if section["eligible"] else "yellow"
    console.print(f"[bold]XNNPACK sparse path[/bold]: [{colour}]{section['verdict']}[/{colour}]")
    for reason in section["reasons"][1:6]:
        console.print(f"  also: {reason}")
    if len(section["reasons"]) > 6:
        console.print(f"  ... {len(section['reasons']) - 6} more (see --json)")
    fraction = section.get("zero_fraction")
    stored = "sparse" if section["sparse_weights_stored"] else "dense"
    clusters = section["clusters"]
    formed = sum(1 for c in clusters if c["structure_ok"])
    console.print(
        f"  weights stored {stored}; {formed} of {len(clusters)} cluster(s) well formed; "
        + (f"1x1 weights {fraction:.1%} zero (needs > 66.7 %)" if fraction is not None else "")
    )
    for note in section.get("notes", []):
        console.print(f"  note: {note}")


def print_pattern(section: dict[str, Any] | None) -> None:
    """`inspect --pattern`: one row per weight tensor."""
    if not section:
        return
    table = compact_table(f"pattern {section['pattern']}", title_justify="left")
    for column in ("op", "shape", "zeros", section["unit"] + "s", "violations", "result"):
        text = column in ("op", "result")
        table.add_column(column, justify="left" if text else "right", no_wrap=not text)
    for row in section["tensors"]:
        if not row["applies"]:
            result, units, bad = f"n/a: {row['reason']}", "", ""
        else:
            result = "ok" if row["satisfied"] else "[red]violated[/red]"
            units, bad = f"{row['units']:,}", f"{row['violations']:,}"
        table.add_row(
            Name(row["op"]),
            "×".join(map(str, row["shape"])),
            f"{row['sparsity']:.1%}",
            units,
            bad,
            result,
        )
    print_table(table)
    console.print(
        f"pattern {section['pattern']}: {section['satisfied']} of {section['checked']} tensor(s) "
        f"satisfy it; {section['not_applicable']} not applicable"
    )
