"""`edgeprune channels`: structured filter pruning (TAO-style options) into a smaller .keras."""

from __future__ import annotations

from typing import Any, Optional

import typer
from rich.table import Table

from edgeprune.cli.common import console, print_json

SHOWN_GROUPS = 30


def register(app: typer.Typer) -> None:
    """Add `channels` to the app."""

    @app.command("channels")
    def channels_command(
        model: str = typer.Argument(..., help="Keras model (.keras or .h5)."),
        output: str = typer.Option(..., "--output", "-o", help="Output .keras (or .h5) path."),
        ratio: Optional[float] = typer.Option(
            None, "--ratio", help="Remove about this fraction of each group's filters (0-0.95)."
        ),
        threshold: Optional[float] = typer.Option(
            None,
            "--threshold",
            help="Remove filters whose normalized norm is at or below this (TAO -pth; default 0.1).",
        ),
        criterion: str = typer.Option("l1", "--criterion", help="Filter norm: l1 | l2."),
        normalizer: str = typer.Option(
            "max", "--normalizer", help="Divide norms by the layer's max | l2 norm (TAO -n)."
        ),
        granularity: int = typer.Option(
            8, "--granularity", help="Keep a multiple of this many filters (TAO -pg)."
        ),
        min_filters: int = typer.Option(
            16, "--min-filters", help="Keep at least this many filters per group (TAO -nf)."
        ),
        exclude: list[str] = typer.Option(
            [],
            "--exclude",
            help="Layer name or glob to leave unpruned (TAO -el); repeat or comma-separate.",
        ),
        equalization: str = typer.Option(
            "union",
            "--equalization",
            help="How tied layers vote: union | intersection | arithmetic_mean | geometric_mean (TAO -eq).",
        ),
        data: Optional[str] = typer.Option(
            None, "--data", help="Fine-tune after pruning on this dataset (digits, .npz, folder)."
        ),
        epochs: Optional[int] = typer.Option(
            None, "--epochs", help="Fine-tuning epochs (default 3 when --data is given)."
        ),
        batch_size: int = typer.Option(32, "--batch-size", help="Fine-tuning batch size."),
        learning_rate: float = typer.Option(
            1e-3, "--learning-rate", help="Fine-tuning learning rate (Adam)."
        ),
        json_output: bool = typer.Option(False, "--json", help="Print one JSON document."),
    ) -> None:
        """Remove whole filters over dependency groups and save a smaller dense model."""
        from edgeprune.channels.pipeline import prune_channels_file
        from edgeprune.manifest import manifest_path

        patterns = [p.strip() for item in exclude for p in item.split(",")]
        target, report = prune_channels_file(
            model,
            output,
            ratio=ratio,
            threshold=threshold,
            criterion=criterion,
            normalizer=normalizer,
            granularity=granularity,
            min_filters=min_filters,
            exclude=patterns,
            equalization=equalization,
            data=data,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
        )
        if json_output:
            print_json(
                {"output": str(target), "manifest": str(manifest_path(target)), **report.to_dict()}
            )
            return
        print_summary(report.to_dict(), str(target), str(manifest_path(target)))


def print_summary(report: dict[str, Any], output: str, manifest: str) -> None:
    """Human view: the groups that changed, then params and MACs before -> after."""
    groups = report["groups"]
    table = Table(title="dependency groups", title_justify="left")
    for column in ("group", "layers", "filters", "status"):
        table.add_column(column, justify="right" if column == "filters" else "left")
    for group in groups[:SHOWN_GROUPS]:
        table.add_row(
            group["name"],
            str(len(group["layers"])),
            f"{group['filters_before']} → {group['filters_after']}",
            group["status"] + (f" ({group['reason']})" if group["reason"] else ""),
        )
    console.print(table)
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
        console.print(
            f"top-1 on {accuracy['dataset']}: {accuracy['top1_before_pruning']:.4f} before, "
            f"{accuracy['top1_after_pruning']:.4f} pruned, {accuracy['top1']:.4f} after "
            f"{accuracy['epochs']} epoch(s) of fine-tuning"
        )
    for note in report["notes"]:
        console.print(f"note: {note}")
    console.print(f"wrote {output} (manifest {manifest})")
