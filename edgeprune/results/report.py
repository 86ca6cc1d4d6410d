"""`results report --html OUT`: one self-contained page (plots embedded as PNG data) with the table."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from edgeprune.files import atomic_output, check_output_path
from edgeprune.html import esc, page, png_img, table
from edgeprune.results.plots import report_plots
from edgeprune.results.tables import summary_rows

HEADERS = (
    "run",
    "model",
    "device",
    "threads",
    "xnnpack",
    "p50 ms",
    "p90 ms",
    "speed-up",
    "size MB",
    "accuracy",
    "runtime",
    "status",
)
TEXT_COLUMNS = (1, 2, 10, 11)  # model, device, runtime, status


def _fmt(value: Any, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}{suffix}"
    return f"{value}{suffix}"


def render_html(rows: list[dict[str, Any]], title: str, runs: list[int]) -> str:
    """The page as text; `rows` are store measurements."""
    summary = summary_rows(rows)
    body = [
        f"<h1>{esc(title)}</h1>",
        f"<p class='note'>runs {', '.join(map(str, runs)) or '–'} · {len(summary)} measurements · "
        f"made {time.strftime('%Y-%m-%d %H:%M', time.localtime())}</p>",
    ]
    for plot_title, png in report_plots(summary):
        body.append(f"<h2>{esc(plot_title)}</h2>{png_img(plot_title, png)}")
    body.append("<h2>Measurements</h2>")
    body += table(HEADERS, (_row(row) for row in summary), TEXT_COLUMNS)
    return page(title, body)


def _row(row: dict[str, Any]) -> tuple[str, list[str]]:
    """(css class, cells) of one summary row: failed runs are marked and say why."""
    accuracy = _fmt(row["accuracy"], 3) + (
        f" ({row['accuracy_source']})" if row["accuracy_source"] else ""
    )
    status = row["status"] if row["status"] == "ok" else f"error: {row['error'] or ''}"
    cells = [
        _fmt(row["run_id"]),
        row["model"] + (" (baseline)" if row["baseline"] else ""),
        str(row["device"]),
        _fmt(row["threads"]),
        "on" if row["xnnpack"] else "off",
        _fmt(row["p50_ms"], 3),
        _fmt(row["p90_ms"], 3),
        _fmt(row["speedup"], 2, "×"),
        _fmt(row["size_bytes"] / 1e6 if row["size_bytes"] else None, 2),
        accuracy,
        f"{row['runtime'] or '–'} {row['runtime_version'] or ''}".strip(),
        str(status),
    ]
    return ("error" if row["status"] != "ok" else ""), cells


def write_report(
    rows: list[dict[str, Any]], out: str, runs: list[int], title: str = "edgeprune results"
) -> Path:
    """Check the output path first, then write the page atomically."""
    target = check_output_path(out, (".html", ".htm"), what="report")
    text = render_html(rows, title, runs)
    with atomic_output(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target
