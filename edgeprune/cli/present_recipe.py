"""How `edgeprune run` and `results report` show a recipe: progress, plan, grid, report."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.table import Table

from edgeprune.cli.common import console, err_console

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
    table = Table(title=f"plan for {plan.recipe.name}: {len(plan.variants)} variant(s)")
    table.add_column("variant", overflow="fold")
    table.add_column("steps", overflow="fold")
    table.add_column("stages (cached = ✓)", overflow="fold")
    for variant_plan in plan.variants:
        stages = [f"{s.kind} {'✓' if s.cached else '·'}" for s in variant_plan.stages]
        stages += [f"bench@{d} {'✓' if b.cached else '·'}" for d, b in variant_plan.bench.items()]
        table.add_row(variant_plan.name, variant_plan.variant.describe(), "  ".join(stages))
    console.print(table)
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
    table = Table(title="variant × stage")
    table.add_column("variant")
    for column in columns:
        table.add_column(column)
    for variant, row in grid.items():
        table.add_row(variant, *(STATE_MARKS.get(row.get(c, ""), row.get(c, "–")) for c in columns))
    console.print(table)


def print_report(report: Any) -> None:
    """Per device: the variants' table (with intervals and verdicts), the recommendation,
    what was excluded and why, and the legend of the warning codes shown."""
    from edgeprune.recipes.report import (
        COMPACT_HEADERS,
        describe_limits,
        table_cells,
        warning_codes,
    )
    from edgeprune.warning_codes import legend

    budget = "none" if report.budget is None else f"{report.budget:g} point(s), judged at 95 %"
    console.print(f"baseline top-1 {report.baseline_text()}; accuracy budget {budget}")
    for device in report.devices:
        table = Table(
            title=f"{device.device}: ms (± = 95 % half-width of p50), kB, top-1 %, Δ in points",
            box=box.SIMPLE_HEAD,
            padding=(0, 0),
            pad_edge=False,
        )
        for header in COMPACT_HEADERS:
            left = header in ("variant", "", "verdict", "acc")
            table.add_column(
                header, justify="left" if left else "right", no_wrap=header == "variant"
            )
        for row in device.rows:
            style = "bold green" if row["recommended"] else "dim" if row.get("breaks") else None
            if row["status"] != "ok":
                style = "red"
            table.add_row(*table_cells(row, compact=True), style=style)
        console.print(table)
        for variant, why in device.missing.items():
            console.print(f"[yellow]{variant}: not measured ({why})[/yellow]")
        rec = device.recommendation
        console.print(
            "★ recommended  ◆ Pareto front  ✗ excluded  × speed-up vs "
            f"{report.reference or '–'} (verdict at 95 %)  acc: drop vs baseline at 95 % "
            "(ok = within budget, ? = cannot tell)"
        )
        console.print(f"constraints: {describe_limits(rec.limits)}")
        console.print(f"Pareto front (latency vs accuracy): {', '.join(rec.pareto) or '–'}")
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
