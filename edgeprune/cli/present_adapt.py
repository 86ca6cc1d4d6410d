"""How `edgeprune adapt` shows its outcome: target, latency and accuracy, then the groups."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.table import Table

from edgeprune.cli.common import console


def progress_printer() -> Callable[[str], None]:
    """One line per iteration as the loop goes."""
    return lambda line: console.print(line)


def _ms(value: dict[str, Any]) -> str:
    ci = value.get("ci_ms")
    shown = f"{value['median_ms']:.4g} ms"
    return shown + (f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "")


def print_adapt(report: dict[str, Any]) -> None:
    """Human view of an `AdaptReport.to_dict()`."""
    base, final, target = report["baseline"], report["final"], report["target"]
    console.print(
        f"target {target['latency_ms']:.4g} ms on {report['device']}: "
        + ("met" if report["target_met"] else "not met")
        + f" ({report['stop_reason']}, {len(report['iterations'])} iteration(s))"
    )
    console.print(f"latency {_ms(base)} → {_ms(final)} measured (95 % CI)")
    speedup, ci = final.get("speedup"), final.get("speedup_ci")
    if speedup is not None:
        console.print(f"speed-up {speedup:.2f}×" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""))
    console.print(f"predicted {base['predicted_ms']:.4g} → {final['predicted_ms']:.4g} ms (table)")
    accuracy = report["accuracy"]
    console.print(
        f"top-1 on {accuracy['dataset']}: {accuracy['top1_before']:.4f} before, "
        f"{accuracy['top1_after']:.4f} after"
    )
    if accuracy.get("distillation"):
        from edgeprune.cli.options import distillation_text

        console.print(distillation_text(accuracy["distillation"], "the input model"))
    table = Table(title="groups", title_justify="left")
    for column in ("group", "width"):
        table.add_column(column)
    for group in report["groups"]:
        if group["fixed"]:
            continue
        note = " (minimum)" if group["at_minimum"] else ""
        table.add_row(group["name"], f"{group['before']} → {group['after']}{note}")
    console.print(table)
    lookup = report["table"]
    console.print(
        f"lookup table: {lookup['entries']} entries, {lookup['measured_now']} measured now "
        f"in {lookup['table_jobs']} job(s) ({lookup['path']})"
    )
    fit = report["validation"]["calibration"].get("max_error")
    if fit is not None:
        again = lookup.get("remeasured") or 0
        console.print(
            f"calibration fits its {len(report['validation']['calibration']['points_ms'])} "
            f"models within {fit:.1%}" + (f" (measured again {again}×)" if again else "")
        )
    error = report["validation"]["mean_abs_error"]
    if error is not None:
        console.print(f"table prediction vs measured: {error:.1%} mean error")
    for note in report["notes"]:
        console.print(f"note: {note}")
    console.print(
        f"wrote {report['output']} (manifest {report['manifest']}, plot {report['plot']})"
    )
