"""How `bench`, `bench --sparse-ab` and `results show|report` print measurements."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.console import RenderableType

from edgeprune.cli.common import console
from edgeprune.cli.present_fleet import human_bytes
from edgeprune.cli.present_table import Name, compact_table, print_table
from edgeprune.results import wording
from edgeprune.text import percent
from edgeprune.warning_codes import legend


def fmt(value: float | None, digits: int = 3, suffix: str = "") -> str:
    return "–" if value is None else f"{value:.{digits}f}{suffix}"


def print_legend(codes: Iterable[str], rows: Sequence[dict[str, Any]] = ()) -> None:
    """Under a table: how speed-ups were judged, what "indist." means, and every warning code
    shown, in plain words with its fix."""
    note = wording.method_note(rows)
    if note:
        console.print(f"[dim]{note}[/dim]")
    if any(r.get("verdict") == "indistinguishable" for r in rows):
        console.print(f"[dim]{wording.VERDICT_KEY}[/dim]")
    explained = legend(codes)
    if explained:
        console.print("warnings:")
    for entry in explained:
        console.print(
            f"  [yellow]{entry.code}[/yellow]: {entry.meaning}. [bold]Fix:[/bold] {entry.fix}",
            highlight=False,
        )


def print_summary(rows: list[dict[str, Any]], title: str) -> None:
    """model × device × threads: p50 and its 95 % interval (±), runs, speed-up with its
    interval and verdict, size, accuracy (size and accuracy only when some row has them).

    Errors and the agent's warnings follow the table, one line each, then the legend, so the
    table stays narrow.
    """
    sizes = any(r["size_bytes"] for r in rows)
    accuracies = any(r["accuracy"] is not None for r in rows)
    p90 = console.width >= 100  # in --json and the HTML report always
    table = compact_table(title)
    table.add_column("model")
    table.add_column("device")
    for column in ("thr", "p50 ms ±95%", *(["p90 ms"] if p90 else []), "runs", "speed-up, 95%"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("verdict", overflow="fold", min_width=8)
    if sizes:
        table.add_column("size", justify="right", no_wrap=True)
    if accuracies:
        table.add_column("top-1 %", justify="right", no_wrap=True)
    notes: list[str] = []
    for row in rows:
        where = f"{row['model']} on {row['device']}, {row['threads']} thread(s)"
        if row["status"] != "ok":
            notes.append(f"[red]{where}: {row['error'] or 'error'}[/red]")
        elif row["warnings"]:
            notes.append(f"[yellow]{where}: {', '.join(row['warnings'])}[/yellow]")
        precision = row.get("precision")
        if precision and not precision.get("reached"):
            notes.append(f"[yellow]{where}: {precision_text(precision)}[/yellow]")
        undecided = wording.undecided_note(row)
        if undecided and row["status"] == "ok":
            notes.append(f"{where}: {undecided}")
        ok = row["status"] == "ok"
        cells: list[RenderableType] = [
            Name(row["model"]),  # the verdict column names the baseline
            Name(row["device"]),
            str(row["threads"]) + ("" if row["xnnpack"] else " no-xnn"),
            p50_cell(row["p50_ms"], row.get("p50_ci_ms")) if ok else "[red]error[/red]",
            *([wording.number(row["p90_ms"])] if p90 else []),
            "–" if row.get("runs") is None else str(row["runs"]),
            *speedup_cells(row),
        ]
        if sizes:
            cells.append(human_bytes(row["size_bytes"]))
        if accuracies:
            accuracy = percent(row["accuracy"], unit=False)
            cells.append(accuracy + ("*" if row["accuracy_source"] == "device" else ""))
        table.add_row(*cells)
    print_table(table)
    if any(r["accuracy_source"] == "device" for r in rows):
        console.print(
            "top-1* measured on the device with --inputs; others from the model's manifest"
        )
    for note in notes:
        console.print(note)
    for note in wording.sparse_path_notes(rows):
        console.print(f"note: {note}", markup=False)
    print_legend((c for r in rows for c in r["warnings"]), rows)


def print_run_outcomes(outcomes: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]]) -> None:
    """Under `results show|compare`: each run that did not end ok (and why), and which
    earlier runs measured what a run reused."""
    for outcome in outcomes:
        if outcome["status"] in ("failed", "interrupted", "running"):
            why = f": {outcome['error']}" if outcome.get("error") else ""
            console.print(f"[red]run {outcome['id']} {outcome['status']}{why}[/red]")
    reused: dict[int, set[int]] = {}
    for row in rows:
        measured_in = row.get("measured_in")
        if measured_in is not None and measured_in != row.get("run_id"):
            reused.setdefault(int(row["run_id"]), set()).add(int(measured_in))
    for run_id, sources in sorted(reused.items()):
        console.print(
            f"run {run_id} reused measurements of run(s) {', '.join(map(str, sorted(sources)))}"
            " (its stages and measurements were cached)"
        )


def p50_cell(p50: float | None, interval: list[float] | None) -> str:
    """ "10.0 ±1.0%": the median and its 95 % half-width, narrow enough for 80 columns."""
    spread = wording.plus_minus(p50, interval).replace(" ", "")
    return wording.number(p50) + (f" {spread}" if spread else "")


def speedup_cells(row: dict[str, Any]) -> list[str]:
    """[speed-up with its 95 % interval, short verdict] of a row ("–" where there is none)."""
    if row.get("status", "ok") != "ok" or row.get("speedup") is None:
        return ["–", "–"]
    if row.get("verdict") == "baseline":
        return ["1×", "baseline"]
    ci = row.get("speedup_ci")
    return [
        f"{row['speedup']:.2f}×" + (f" {ci[0]:.2f}–{ci[1]:.2f}" if ci else ""),
        wording.verdict(row, short=True),
    ]


def precision_text(precision: dict[str, Any]) -> str:
    """What --precision got to: "precision 2 % not reached: ±3.1 % after 412 runs, 60 s"."""
    target = precision.get("target")
    width = precision.get("half_width")
    reached = "reached" if precision.get("reached") else "not reached"
    got = f"±{width * 100:.1f} %" if isinstance(width, (int, float)) else "no interval"
    target_text = f"{target * 100:g} %" if isinstance(target, (int, float)) else "?"
    return (
        f"precision {target_text} {reached}: {got} after {precision.get('runs', '?')} runs, "
        f"{precision.get('seconds', 0):.0f} s"
    )


def print_compare(run_ids: list[int], rows: list[dict[str, Any]]) -> None:
    """`results compare`: p50 ± per run, then the last run against the first with its verdict."""
    table = compact_table(f"p50 ms across runs {', '.join(map(str, run_ids))}")
    table.add_column("model")
    table.add_column("device")
    table.add_column("thr", justify="right")
    for run in run_ids:
        table.add_column(f"run {run}", justify="right", no_wrap=True)
    table.add_column("first/last, 95%", justify="right", no_wrap=True)
    table.add_column("verdict", overflow="fold", min_width=8)
    for row in rows:
        cells = [p50_cell(row["p50_ms"].get(str(r)), row["p50_ci_ms"].get(str(r))) for r in run_ids]
        table.add_row(
            Name(row["model"]),
            Name(row["device"]),
            str(row["threads"]) + ("" if row["xnnpack"] else " no-xnn"),
            *cells,
            *speedup_cells(row),
        )
    print_table(table)
    for row in rows:
        undecided = wording.undecided_note(row)
        if undecided:
            console.print(
                f"{row['model']} on {row['device']}, {row['threads']} thread(s): {undecided}"
            )
    console.print(
        "[dim]first/last = p50 in the first run / p50 in the last: above 1 the last run is "
        "faster[/dim]"
    )
    print_legend((c for r in rows for c in r.get("warnings") or []), rows)


def print_bench_run(run: Any) -> None:
    """A `BenchRun`: its table and where it was stored."""
    print_summary(run.rows, f"bench run {run.run_id} (baseline {run.baseline.name})")
    console.print(f"stored in {run.store.path} as run {run.run_id}")
    if run.mlflow is not None:
        console.print(
            f"logged to MLflow at {run.mlflow.uri}: {len(run.mlflow.runs)} run(s) in "
            f"experiment {run.mlflow.experiment_id}"
        )


def print_sparse_ab(report: Any) -> None:
    """An `ABReport`: dense vs sparse p50 ± per device and thread count, the speed-up with its
    interval and verdict, then the pairs' checks, notes and the warnings' legend."""
    table = compact_table(f"sparse A/B, run {report.run_id}: same weights, stored dense vs sparse")
    table.add_column("model")
    table.add_column("device")
    for column in ("thr", "dense p50 ms", "sparse p50 ms", "speed-up, 95%"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("verdict", overflow="fold", min_width=8)
    notes: list[str] = []
    for row in report.rows:
        shown = row.to_dict()
        shown["runs"] = min((r for r in row.runs if r), default=None)
        table.add_row(
            Name(Path(row.source).name),
            Name(row.device),
            str(row.threads),
            p50_cell(row.dense_p50_ms, row.dense_p50_ci_ms),
            p50_cell(row.sparse_p50_ms, row.sparse_p50_ci_ms),
            *speedup_cells(shown),
        )
        undecided = wording.undecided_note(shown)
        if undecided:
            notes.append(
                f"{Path(row.source).name} on {row.device}, {row.threads} thread(s): {undecided}"
            )
        for text in (row.error, row.note):
            line = f"{row.device} ({row.runtime or 'runtime ?'}): {text}" if text else None
            if line and line not in notes:
                notes.append(line)
    print_table(table)
    for pair in report.pairs:
        console.print(f"{Path(pair.source).name}: the sparse file is {pair.verdict}")
    for note in notes:
        console.print(f"note: {note}")
    print_legend((c for r in report.rows for c in r.warnings), [r.to_dict() for r in report.rows])
    console.print(f"stored in {report.store.path} as run {report.run_id}")


def print_runs(db: Path, runs: Sequence[dict[str, Any]]) -> None:
    """`results list`: the DB read (first, so a newcomer sees whose runs these are), then
    one line per run; a failed run's error follows the table."""
    table = compact_table(f"runs in {db}")
    for column in ("run", "when", "kind", "status", "devices", "models", "measurements", "ok"):
        table.add_column(column, justify="left" if column in ("when", "devices") else "right")
    for run in runs:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run["created_at"]))
        measured = str(run["rows"]) + (
            f" ({run['reused_rows']} reused)" if run["reused_rows"] else ""
        )
        table.add_row(
            str(run["id"]),
            when,
            run["kind"],
            run["status"],
            ", ".join(run["devices"]),
            str(run["models"]),
            measured,
            str(run["ok_rows"]),
        )
    print_table(table)
    for run in runs:
        if run.get("error"):
            console.print(f"run {run['id']} {run['status']}: {run['error']}", highlight=False)
    if not runs:
        console.print(f"no runs in {db} yet")
