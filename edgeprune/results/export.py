"""Measurements out of the store as CSV or JSON (a file written atomically, or stdout)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from edgeprune.errors import UserError
from edgeprune.files import atomic_output, check_output_path
from edgeprune.results.store import COLUMNS

FORMATS = ("csv", "json")


def render(rows: list[dict[str, Any]], fmt: str) -> str:
    """CSV with the store's columns (warnings joined by ';'; `measured_in` too when the rows
    include reused ones), or a JSON list with full results."""
    if fmt == "json":
        return json.dumps(rows, indent=2, sort_keys=True, default=str) + "\n"
    if fmt != "csv":
        raise UserError(f"--format {fmt!r} is unknown; choose csv or json")
    buffer = io.StringIO()
    reused = any("measured_in" in row for row in rows)  # named runs: which run measured it
    writer = csv.DictWriter(
        buffer,
        fieldnames=list(COLUMNS) + (["measured_in"] if reused else []),
        extrasaction="ignore",
        lineterminator="\n",
    )
    writer.writeheader()
    for row in rows:
        flat = dict(row)
        flat["warnings"] = ";".join(row.get("warnings") or [])
        writer.writerow(flat)
    return buffer.getvalue()


def format_for(path: str | None, fmt: str | None) -> str:
    """--format wins; otherwise the output's suffix decides; stdout defaults to CSV."""
    if fmt:
        if fmt not in FORMATS:
            raise UserError(f"--format {fmt!r} is unknown; choose csv or json")
        return fmt
    if path and path != "-":
        suffix = Path(path).suffix.lower().lstrip(".")
        if suffix in FORMATS:
            return suffix
        raise UserError(
            f"cannot tell the format of {path!r}; end it with .csv or .json, or pass --format"
        )
    return "csv"


def write_export(text: str, path: str) -> Path:
    target = check_output_path(path, (".csv", ".json"), what="export")
    with atomic_output(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target
