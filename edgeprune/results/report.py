"""`results report --html OUT`: one self-contained page (plots embedded as PNG data) with the
table (each p50 with its interval, each speed-up with its interval and verdict) and a legend
of the warning codes it shows."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from edgeprune.files import atomic_output, check_output_path
from edgeprune.html import esc, page, png_img, table
from edgeprune.results import wording
from edgeprune.results.plots import report_plots
from edgeprune.results.tables import summary_rows
from edgeprune.text import percent
from edgeprune.warning_codes import legend

HEADERS = (
    "run",
    "model",
    "device",
    "threads",
    "xnnpack",
    "p50 ms (95 % interval)",
    "p90 ms",
    "runs",
    "speed-up (95 % interval)",
    "verdict",
    "size MB",
    "accuracy",
    "runtime",
    "warnings",
    "status",
)
TEXT_COLUMNS = (1, 2, 9, 12, 13, 14)  # model, device, verdict, runtime, warnings, status


def _fmt(value: Any, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}{suffix}"
    return f"{value}{suffix}"


def render_html(rows: list[dict[str, Any]], title: str, runs: list[int]) -> str:
    """The page as text; `rows` are store measurements (read `with_json` for intervals)."""
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
    body += legend_html(summary)
    return page(title, body)


def legend_html(summary: list[dict[str, Any]]) -> list[str]:
    """Under the table: how the speed-ups were judged, why pruned fp32 is no faster on a
    device without XNNPACK's sparse path, and each warning code shown, with its fix."""
    out = []
    note = wording.method_note(summary)
    if note:
        out.append(f"<p class='note'>{esc(note)}</p>")
    for sparse in wording.sparse_path_notes(summary):
        out.append(f"<p class='note'>{esc(sparse)}</p>")
    explained = legend(c for row in summary for c in row["warnings"])
    if explained:
        out.append("<h2>Warnings</h2><dl class='legend'>")
        for entry in explained:
            out.append(
                f"<dt><code>{esc(entry.code)}</code></dt><dd>{esc(entry.meaning)}. "
                f"<strong>Fix:</strong> {esc(entry.fix)}</dd>"
            )
        out.append("</dl>")
    return out


def _row(row: dict[str, Any]) -> tuple[str, list[str]]:
    """(css class, cells) of one summary row: failed runs are marked and say why."""
    accuracy = percent(row["accuracy"]) + (
        f" ({row['accuracy_source']})" if row["accuracy_source"] else ""
    )
    status = row["status"] if row["status"] == "ok" else f"error: {row['error'] or ''}"
    interval = row.get("p50_ci_ms")
    p50 = wording.latency(row["p50_ms"], interval, unit="")
    if interval:
        p50 += f" ({wording.number(interval[0])}–{wording.number(interval[1])})"
    cells = [
        _fmt(row["run_id"]),
        row["model"] + (" (baseline)" if row["baseline"] else ""),
        str(row["device"]),
        _fmt(row["threads"]),
        "on" if row["xnnpack"] else "off",
        p50,
        wording.number(row["p90_ms"]),
        _fmt(row.get("runs")),
        wording.speedup(row),
        wording.verdict(row),
        _fmt(row["size_bytes"] / 1e6 if row["size_bytes"] else None, 2),
        accuracy,
        f"{row['runtime'] or '–'} {row['runtime_version'] or ''}".strip(),
        ", ".join(row["warnings"]) or "–",
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
