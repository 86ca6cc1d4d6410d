"""The closing table's numbers, recorded by the fault tests as they run.

Each test calls `record(request, "faults", injected=3, survived=3)`; rows are appended (one
JSON line each, safe across xdist workers) to build/faults/figures.jsonl with the run's id.
`python tests/faults/figures.py` prints the table of the latest run; `make test-faults`
prints it at the end too.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FIGURES = REPO / "build" / "faults" / "figures.jsonl"


def record(run_id: str, test: str, category: str, **counts: Any) -> None:
    """Append one row: which test, which part of the table, and its counts."""
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(
        {"run": run_id, "time": time.time(), "test": test, "category": category, **counts},
        sort_keys=True,
    )
    fd = os.open(FIGURES, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())  # one write per line: appends never interleave
    finally:
        os.close(fd)


def latest_rows(path: Path = FIGURES) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        return []
    last_run = max(rows, key=lambda r: r["time"])["run"]
    return [r for r in rows if r["run"] == last_run]


def table(rows: list[dict[str, Any]]) -> str:
    """Sum every count per category; one line per category and count."""
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    tests: dict[str, int] = defaultdict(int)
    for row in rows:
        tests[row["category"]] += 1
        for key, value in row.items():
            if key not in ("run", "time", "test", "category") and isinstance(value, (int, float)):
                totals[row["category"]][key] += value
    lines = [f"{'category':<14} {'tests':>5}  counts"]
    for category in sorted(totals):
        counts = ", ".join(f"{k}={v:g}" for k, v in sorted(totals[category].items()))
        lines.append(f"{category:<14} {tests[category]:>5}  {counts}")
    return "\n".join(lines)


if __name__ == "__main__":
    found = latest_rows(Path(sys.argv[1]) if len(sys.argv) > 1 else FIGURES)
    print(table(found) if found else "no figures recorded yet (run: make test-faults)")
