"""`edgeprune results report`: a recipe run gets its recipe report, any other run the bench table.

Which report a run gets depends on how it was made, which only the recipes know; so the
choice sits with them, above the results store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeprune.files import check_output_path
from edgeprune.results.queries import DB, open_store, resolve_runs
from edgeprune.results.tables import summary_rows


@dataclass
class RunsReport:
    """What was reported: the recipe report, or the runs' summary rows; the page if written."""

    run_ids: list[int]
    recipe: Any | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    written: Path | None = None


def report_runs(db: DB, refs: list[str] | None = None, *, html: str | None = None) -> RunsReport:
    """The report of the runs (default latest); with `html`, also the page written there."""
    from edgeprune.recipes.report import recipe_report_for_run

    if html:
        check_output_path(html, (".html", ".htm"), what="report")
    store = open_store(db)
    run_ids = resolve_runs(store, refs)
    recipe = recipe_report_for_run(store, run_ids[0]) if len(run_ids) == 1 else None
    if recipe is not None:
        from edgeprune.recipes.report_html import write_html

        written = write_html(recipe, Path(html)) if html else None
        return RunsReport(run_ids, recipe=recipe, written=written)
    rows = store.measurements(run_ids, with_json=True)  # raw runs: intervals and verdicts
    if html:
        from edgeprune.results.report import write_report

        return RunsReport(run_ids, written=write_report(rows, html, run_ids))
    return RunsReport(run_ids, rows=summary_rows(rows))
