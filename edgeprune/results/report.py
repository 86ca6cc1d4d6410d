"""`results report --html OUT`: one self-contained page (plots embedded as PNG data) with the table."""

from __future__ import annotations

import base64
import html
import time
from pathlib import Path
from typing import Any

from edgeprune.files import atomic_output, check_output_path
from edgeprune.results.plots import report_plots
from edgeprune.results.tables import summary_rows

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th { background: #f3f3f3; } td.text { text-align: left; }
tr.error td { color: #a00; } img { max-width: 100%; margin: 1em 0; }
.note { color: #666; font-size: 0.85em; }
"""


def _fmt(value: Any, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}{suffix}"
    return f"{value}{suffix}"


def render_html(rows: list[dict[str, Any]], title: str, runs: list[int]) -> str:
    """The page as text; `rows` are store measurements."""
    table = summary_rows(rows)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='note'>runs {', '.join(map(str, runs)) or '–'} · {len(table)} measurements · "
        f"made {time.strftime('%Y-%m-%d %H:%M', time.localtime())}</p>",
    ]
    for plot_title, png in report_plots(table):
        data = base64.b64encode(png).decode()
        parts.append(
            f"<h2>{html.escape(plot_title)}</h2><img alt='{html.escape(plot_title)}' src='data:image/png;base64,{data}'>"
        )
    headers = [
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
    ]
    parts.append(
        "<h2>Measurements</h2><table><tr>" + "".join(f"<th>{h}</th>" for h in headers) + "</tr>"
    )
    for row in table:
        accuracy = _fmt(row["accuracy"], 3) + (
            f" ({row['accuracy_source']})" if row["accuracy_source"] else ""
        )
        status = row["status"] if row["status"] == "ok" else f"error: {row['error'] or ''}"
        cells = [
            (_fmt(row["run_id"]), False),
            (row["model"] + (" (baseline)" if row["baseline"] else ""), True),
            (row["device"], True),
            (_fmt(row["threads"]), False),
            ("on" if row["xnnpack"] else "off", False),
            (_fmt(row["p50_ms"], 3), False),
            (_fmt(row["p90_ms"], 3), False),
            (_fmt(row["speedup"], 2, "×"), False),
            (_fmt(row["size_bytes"] / 1e6 if row["size_bytes"] else None, 2), False),
            (accuracy, False),
            (f"{row['runtime'] or '–'} {row['runtime_version'] or ''}".strip(), True),
            (status, True),
        ]
        css = " class='error'" if row["status"] != "ok" else ""
        parts.append(
            f"<tr{css}>"
            + "".join(
                f"<td{' class=text' if text else ''}>{html.escape(str(v))}</td>"
                for v, text in cells
            )
            + "</tr>"
        )
    parts.append("</table></body></html>\n")
    return "\n".join(parts)


def write_report(
    rows: list[dict[str, Any]], out: str, runs: list[int], title: str = "edgeprune results"
) -> Path:
    """Check the output path first, then write the page atomically."""
    target = check_output_path(out, (".html", ".htm"), what="report")
    text = render_html(rows, title, runs)
    with atomic_output(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target
