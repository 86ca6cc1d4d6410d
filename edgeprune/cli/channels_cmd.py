"""`edgeprune channels`: structured filter pruning (TAO-style options) into a smaller .keras."""

from __future__ import annotations

from typing import Any, Optional

import typer

from edgeprune.channels.options import ChannelOptions
from edgeprune.cli.common import console, print_json, quiet_option
from edgeprune.cli.given import given_options
from edgeprune.cli.options import distillation_text, flag
from edgeprune.cli.present_progress import training_progress
from edgeprune.cli.present_table import Name, compact_table, print_table
from edgeprune.text import metric_value

SHOWN_GROUPS = 30


def register(app: typer.Typer) -> None:
    """Add `channels` to the app."""

    @app.command("channels")
    def channels_command(
        ctx: typer.Context,
        model: str = typer.Argument(..., help="Keras model (.keras or .h5)."),
        output: str = typer.Option(..., "--output", "-o", help="Output .keras (or .h5) path."),
        ratio: Optional[float] = flag(ChannelOptions, "ratio"),
        threshold: Optional[float] = flag(ChannelOptions, "threshold"),
        criterion: str = flag(ChannelOptions, "criterion"),
        normalizer: str = flag(ChannelOptions, "normalizer"),
        granularity: int = flag(ChannelOptions, "granularity"),
        min_filters: int = flag(ChannelOptions, "min_filters"),
        exclude: list[str] = flag(ChannelOptions, "exclude", default=[]),
        equalization: str = flag(ChannelOptions, "equalization"),
        data: Optional[str] = flag(ChannelOptions, "data"),
        epochs: int = flag(ChannelOptions, "epochs", show_default=False),
        batch_size: int = flag(ChannelOptions, "batch_size"),
        learning_rate: float = flag(ChannelOptions, "learning_rate"),
        learning_rate_decay: str = flag(ChannelOptions, "learning_rate_decay"),
        seed: int = flag(ChannelOptions, "seed"),
        tensorboard: Optional[str] = flag(ChannelOptions, "tensorboard", metavar="DIR"),
        custom_objects: Optional[str] = flag(ChannelOptions, "custom_objects"),
        task: Optional[str] = flag(ChannelOptions, "task"),
        metric: Optional[str] = flag(ChannelOptions, "metric", metavar="FILE.py:fn"),
        decode: Optional[str] = flag(ChannelOptions, "decode"),
        loss: Optional[str] = flag(ChannelOptions, "loss"),
        distill: bool = flag(ChannelOptions, "distill"),
        temperature: float = flag(ChannelOptions, "temperature"),
        alpha: float = flag(ChannelOptions, "alpha"),
        json_output: bool = typer.Option(False, "--json", help="Print one JSON document."),
        quiet: bool = quiet_option(),
    ) -> None:
        """Remove whole filters over dependency groups and save a smaller dense model."""
        from edgeprune.channels.pipeline import prune_channels_file
        from edgeprune.manifest import manifest_path

        values = {k: v for k, v in locals().items() if k in ChannelOptions.model_fields}
        chosen = given_options(ctx, values)
        if "exclude" in chosen:
            chosen["exclude"] = [p.strip() for item in exclude for p in item.split(",")]
        with training_progress(quiet):
            target, report = prune_channels_file(model, output, **chosen)
        if json_output:
            print_json(
                {"output": str(target), "manifest": str(manifest_path(target)), **report.to_dict()}
            )
            return
        print_summary(report.to_dict(), str(target), str(manifest_path(target)))


def print_summary(report: dict[str, Any], output: str, manifest: str) -> None:
    """Human view: the groups that changed, then params and MACs before -> after."""
    groups = report["groups"]
    table = compact_table("dependency groups", title_justify="left")
    for column in ("group", "layers", "filters", "status"):
        table.add_column(
            column,
            justify="right" if column in ("layers", "filters") else "left",
            no_wrap=column in ("layers", "filters"),
        )
    for group in groups[:SHOWN_GROUPS]:
        table.add_row(
            Name(group["name"]),
            str(len(group["layers"])),
            f"{group['filters_before']} → {group['filters_after']}",
            group["status"] + (f" ({group['reason']})" if group["reason"] else ""),
        )
    print_table(table)
    if len(groups) > SHOWN_GROUPS:
        console.print(f"… and {len(groups) - SHOWN_GROUPS} more groups (--json lists all)")
    prunable = report["prunable_filters"]
    console.print(
        f"prunable filters {prunable['before']:,} → {prunable['after']:,} "
        f"({report['removed_fraction']:.1%} removed)"
    )
    for key in ("params", "macs"):
        change = report[key]
        ratio = f" ({change['ratio']:.2f}×)" if change["ratio"] is not None else ""
        console.print(
            f"{'MACs' if key == 'macs' else 'params'} {change['before']:,} → {change['after']:,}{ratio}"
        )
    for skipped in report["skipped_layers"]:
        kind = "unknown" if skipped["unknown"] else "kept"
        console.print(f"  {kind}: {skipped['name']} ({skipped['class_name']}): {skipped['reason']}")
    accuracy = report.get("accuracy")
    if accuracy:
        unit = accuracy.get("unit")
        label = accuracy.get("label", "top-1")
        before = accuracy.get("value_before_pruning", accuracy.get("top1_before_pruning"))
        pruned = accuracy.get("value_after_pruning", accuracy.get("top1_after_pruning"))
        after = accuracy.get("value", accuracy.get("top1"))
        console.print(
            f"{label} on {accuracy['dataset']}: {metric_value(before, unit)} before, "
            f"{metric_value(pruned, unit)} pruned, {metric_value(after, unit)} after "
            f"{accuracy['epochs']} epoch(s) of fine-tuning"
        )
        if accuracy.get("distillation"):
            console.print(distillation_text(accuracy["distillation"], "the unpruned model"))
    for note in report["notes"]:
        console.print(f"note: {note}")
    console.print(f"wrote {output} (manifest {manifest})")
