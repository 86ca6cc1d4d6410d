"""How `edgeprune run` and `results report` show a recipe: progress, plan, grid, report."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from edgeprune.cli.common import console, err_console
from edgeprune.cli.present_table import Name, compact_table, print_table

STATE_MARKS = {
    "cached": "[green]cached[/green]",
    "done": "[cyan]built[/cyan]",
    "failed": "[red]failed[/red]",
    "skipped": "[dim]skipped[/dim]",
    "pending": "[yellow]pending[/yellow]",
}


def print_progress(event: Any) -> None:
    """One line per variant × stage on stderr (stdout stays clean for --json)."""
    if event.variant == "*":
        err_console.print(f"  {event.stage}: {event.state} {event.index}/{event.total}")
        return
    where = f"[{event.index}/{event.total}] {event.variant} × {event.stage}"
    if event.state == "running":
        err_console.print(f"{where} …")
    elif event.state == "done":
        err_console.print(f"{where} [cyan]built[/cyan] ({event.seconds:.1f} s)")
    elif event.state == "failed":
        err_console.print(f"{where} [red]failed[/red]: {event.message}")
    else:
        err_console.print(f"{where} [dim]{event.state}[/dim]")


def print_plan(plan: Any) -> None:
    cached, total = plan.stage_counts()
    table = compact_table(f"plan for {plan.recipe.name}: {len(plan.variants)} variant(s)")
    table.add_column("variant")
    table.add_column("steps")
    table.add_column("stages (cached = ✓)")
    for variant_plan in plan.variants:
        stages = [f"{s.kind} {'✓' if s.cached else '·'}" for s in variant_plan.stages]
        stages += [f"bench@{d} {'✓' if b.cached else '·'}" for d, b in variant_plan.bench.items()]
        table.add_row(
            Name(variant_plan.name), escape(variant_plan.variant.describe()), "  ".join(stages)
        )
    print_table(table)
    console.print(
        f"{cached} of {total} stage(s) cached in {plan.workdir}; "
        f"devices: {', '.join(d.name for d in plan.devices)}"
    )
    for device, limits in plan.constraints.items():
        console.print(f"constraints on {device}: {limits.describe()}", highlight=False)


def print_grid(grid: dict[str, dict[str, str]]) -> None:
    order = ("base", "prune", "channels", "finetune", "convert")
    found = list(dict.fromkeys(stage for row in grid.values() for stage in row))
    columns = [s for s in order if s in found] + [s for s in found if s not in order]
    table = compact_table("variant × stage")
    table.add_column("variant")
    for column in columns:
        table.add_column(column, no_wrap=True)
    for variant, row in grid.items():
        marks = (STATE_MARKS.get(row.get(c, ""), row.get(c, "–")) for c in columns)
        table.add_row(Name(variant), *marks)
    print_table(table)


def print_report(report: Any) -> None:
    """Per device: the variants' table (with intervals and verdicts), the recommendation,
    what was excluded and why, and the legend of the warning codes shown."""
    from edgeprune.recipes.report import (
        describe_limits,
        table_cells,
        table_headers,
        warning_codes,
    )
    from edgeprune.warning_codes import legend

    metric = report.metric
    shown = "top-1 %, Δ in points" if report.by_top1 else f"{metric.label}, Δ (+ = better)"
    if report.by_top1:
        budget = "none" if report.budget is None else f"{report.budget:g} point(s), judged at 95 %"
        console.print(f"baseline top-1 {report.baseline_text()}; accuracy budget {budget}")
    else:
        console.print(report.headline())
    for device in report.devices:
        table = compact_table(
            f"{device.device}: ms (± = 95 % half-width of p50), kB, {shown}",
            padding=(0, 0),
        )
        for header in table_headers(metric, compact=True):
            left = header in ("variant", "", "verdict", "acc")
            table.add_column(header, justify="left" if left else "right", no_wrap=not left)
        for row in device.rows:
            style = "bold green" if row["recommended"] else "dim" if row.get("breaks") else None
            if row["status"] != "ok":
                style = "red"
            variant, *cells = table_cells(row, compact=True, metric=metric)
            table.add_row(Name(variant), *map(escape, cells), style=style)
        print_table(table)
        for variant, why in device.missing.items():
            console.print(f"[yellow]{variant}: not measured ({why})[/yellow]")
        rec = device.recommendation
        console.print(
            "★ recommended  ◆ Pareto front  ✗ excluded  × speed-up vs "
            f"{report.reference or '–'} (verdict at 95 %)  "
            + (
                "acc: drop vs baseline at 95 % (ok = within budget, ? = cannot tell)"
                if report.by_top1
                else f"bud: {metric.label} drop vs baseline at 95 %, paired bootstrap (ok = within, ? = cannot tell)"
            )
        )
        console.print(f"constraints: {describe_limits(rec.limits)}")
        what = "accuracy" if report.by_top1 else metric.label
        console.print(f"Pareto front (latency vs {what}): {', '.join(rec.pareto) or '–'}")
        for exclusion in rec.excluded:
            console.print(f"  excluded {exclusion.text()}", markup=False)
        for note in rec.notes:
            console.print(f"  note: {note}", markup=False)
        if rec.choice:
            console.print(f"[bold]{device.device}: ship {rec.choice.variant}[/bold] — {rec.reason}")
            if rec.runner_up:
                console.print(f"  runner-up {rec.runner_up.variant}: {rec.runner_up_reason}")
        else:
            console.print(f"[bold]{device.device}: no recommendation[/bold] — {rec.reason}")
    for warning in legend(warning_codes(report)):
        console.print(f"warning {warning.line()}", markup=False)
