"""How `bench`, `bench --sparse-ab` and `results show|report` print measurements."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from edgeprune.cli.common import console
from edgeprune.cli.present_fleet import human_bytes


def fmt(value: float | None, digits: int = 3, suffix: str = "") -> str:
    return "–" if value is None else f"{value:.{digits}f}{suffix}"


def print_summary(rows: list[dict[str, Any]], title: str) -> None:
    """model × device × threads: p50, p90, speed-up against the baseline, size, accuracy.

    Errors and the agent's warnings follow the table, one line each, so the table stays narrow.
    """
    table = Table(title=title)
    table.add_column("model", overflow="fold")
    table.add_column("device", overflow="fold")
    for column in ("thr", "p50 ms", "p90 ms", "speed-up", "size", "accuracy"):
        table.add_column(column, justify="right")
    notes: list[str] = []
    for row in rows:
        where = f"{row['model']} on {row['device']}, {row['threads']} thread(s)"
        if row["status"] != "ok":
            notes.append(f"[red]{where}: {row['error'] or 'error'}[/red]")
        elif row["warnings"]:
            notes.append(f"[yellow]{where}: {', '.join(row['warnings'])}[/yellow]")
        accuracy = fmt(row["accuracy"], 3)
        if row["accuracy_source"] == "device":
            accuracy += "*"
        table.add_row(
            row["model"] + (" (base)" if row["baseline"] else ""),
            row["device"],
            str(row["threads"]) + ("" if row["xnnpack"] else " no-xnn"),
            fmt(row["p50_ms"]) if row["status"] == "ok" else "[red]error[/red]",
            fmt(row["p90_ms"]),
            fmt(row["speedup"], 2, "×"),
            human_bytes(row["size_bytes"]),
            accuracy,
        )
    console.print(table)
    if any(r["accuracy_source"] == "device" for r in rows):
        console.print(
            "accuracy* measured on the device with --inputs; others from the model's manifest"
        )
    for note in notes:
        console.print(note)


def print_bench_run(run: Any) -> None:
    """A `BenchRun`: its table and where it was stored."""
    print_summary(run.rows, f"bench run {run.run_id} (baseline {run.baseline.name})")
    console.print(f"stored in {run.store.path} as run {run.run_id}")


def print_sparse_ab(report: Any) -> None:
    """An `ABReport`: dense vs sparse p50 per device and thread count, then the verdicts."""
    table = Table(title=f"sparse A/B, run {report.run_id}: same weights, stored dense vs sparse")
    for column in ("model", "device", "thr", "dense p50 ms", "sparse p50 ms", "speed-up"):
        table.add_column(column, justify="left" if column in ("model", "device") else "right")
    notes: list[str] = []
    for row in report.rows:
        table.add_row(
            Path(row.source).name,
            row.device,
            str(row.threads),
            "–" if row.dense_p50_ms is None else f"{row.dense_p50_ms:.3f}",
            "–" if row.sparse_p50_ms is None else f"{row.sparse_p50_ms:.3f}",
            "–" if row.speedup is None else f"{row.speedup:.2f}×",
        )
        for text in (row.error, row.note):
            line = f"{row.device} ({row.runtime or 'runtime ?'}): {text}" if text else None
            if line and line not in notes:
                notes.append(line)
    console.print(table)
    for pair in report.pairs:
        console.print(f"{Path(pair.source).name}: the sparse file is {pair.verdict}")
    for note in notes:
        console.print(f"note: {note}")
    console.print(f"stored in {report.store.path} as run {report.run_id}")
