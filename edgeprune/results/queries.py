"""What `edgeprune results` asks of the store: runs by reference, their rows, run against run.

Each function opens the store (`db`: a path, or None for the default store), checks what the
user named and returns a value with `to_dict()` (the command's `--json` document), so the
CLI only prints and the same questions can be asked from Python.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeprune.errors import UserError
from edgeprune.results.store import ResultsStore
from edgeprune.results.tables import compare_rows, summary_rows

DB = str | os.PathLike[str] | None


@dataclass
class RunRows:
    """Rows of one or more runs: summaries (`show`) or run-against-run p50s (`compare`).

    A run's rows include the measurements it reused (a cached recipe run), each saying in
    `measured_in` which run measured it; `outcomes` says how each run ended."""

    run_ids: list[int]
    rows: list[dict[str, Any]]
    outcomes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"run {', '.join(map(str, self.run_ids))}"

    def to_dict(self) -> dict[str, Any]:
        return {"runs": self.run_ids, "outcomes": self.outcomes, "rows": self.rows}


OUTCOME_FIELDS = ("id", "kind", "status", "error", "label", "command")


def run_outcomes(store: ResultsStore, run_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Each run's kind, status and error (why a run shows no rows, or fewer than expected)."""
    found = [store.run_info(run_id) for run_id in run_ids]
    return [{k: info[k] for k in OUTCOME_FIELDS} for info in found if info is not None]


def open_store(db: DB) -> ResultsStore:
    """The store to read; a DB that does not exist yet is an error, not a new file."""
    return ResultsStore(db, create=False)


def resolve_runs(
    store: ResultsStore, refs: Sequence[str] | None, *, default_latest: bool = True
) -> list[int]:
    """Run ids from references (`12`, `latest`, `latest~1`), each once; none given: latest."""
    if not refs:
        if not default_latest:
            return []
        if not store.runs(limit=1):
            raise UserError(
                f"results DB {str(store.path)!r} holds no runs yet; run edgeprune bench first"
            )
        return [store.resolve_run("latest")]
    return list(dict.fromkeys(store.resolve_run(ref) for ref in refs))


def show_runs(
    db: DB,
    refs: Sequence[str] | None = None,
    *,
    device: str | None = None,
    model: str | None = None,
) -> RunRows:
    """The summary rows of the runs (default latest): p50 with its interval, p90, speed-up with
    its interval and verdict, size, accuracy."""
    store = open_store(db)
    run_ids = resolve_runs(store, refs)
    rows = store.measurements(
        run_ids, device=device, model=model, with_json=True, include_reused=True
    )
    return RunRows(run_ids, summary_rows(rows), run_outcomes(store, run_ids))


def compare_runs(db: DB, refs: Sequence[str]) -> RunRows:
    """p50 of the same model, device and threads across two or more runs, and each later run
    against the first (speed-up, interval, verdict)."""
    store = open_store(db)
    run_ids = resolve_runs(store, refs)
    if len(run_ids) < 2:
        raise UserError("compare needs two or more different runs (e.g. compare latest~1 latest)")
    rows = store.measurements(run_ids, with_json=True, include_reused=True)
    return RunRows(run_ids, compare_rows(rows, run_ids), run_outcomes(store, run_ids))


@dataclass
class Export:
    """Every measurement of the runs, rendered; `target` is None when it goes to stdout."""

    count: int
    text: str
    target: Path | None


def export_runs(db: DB, refs: Sequence[str] | None, out: str, fmt: str | None) -> Export:
    """CSV or JSON of the runs' measurements (every run when none is named; a named run's
    include those it reused), written to `out` atomically unless `out` is `-`."""
    from edgeprune.results.export import format_for, render, write_export

    store = open_store(db)
    chosen = format_for(out, fmt)
    run_ids = resolve_runs(store, refs, default_latest=False)
    rows = store.measurements(
        run_ids or None, with_json=chosen == "json", include_reused=bool(run_ids)
    )
    text = render(rows, chosen)
    target = None if out == "-" else write_export(text, out)
    return Export(len(rows), text, target)
