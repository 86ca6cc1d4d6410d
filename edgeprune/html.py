"""The one HTML page shell every edgeprune report uses: doctype, charset, title, style, tables.

Reports are single self-contained files (plots inlined as PNG data), so they open from a
CI artifact or an e-mail. One shell keeps the pages alike and the escaping in one place.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1100px; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th { background: #f3f3f3; } td.text { text-align: left; }
tr.pick td { background: #eaf6ea; font-weight: 600; } tr.over td { color: #888; }
tr.error td { color: #a00; } img { max-width: 100%; margin: 1em 0; }
.rec { background: #f6f9ff; border-left: 4px solid #3a6fd8; padding: 0.6em 1em; }
.note { color: #666; font-size: 0.85em; }
"""


def esc(value: object) -> str:
    """Text (or anything printable) made safe for an element's body or a quoted attribute."""
    return html.escape(str(value))


def page(title: str, body: Iterable[str]) -> str:
    """A whole document: the shell around `body`'s fragments (already HTML), one per line."""
    head = f"<!doctype html><html><head><meta charset='utf-8'>\n<title>{esc(title)}</title>"
    return "\n".join([f"{head}<style>{STYLE}</style></head><body>", *body, "</body></html>\n"])


def png_img(title: str, png: bytes) -> str:
    """An <img> carrying the PNG itself, so the page needs no file beside it."""
    data = base64.b64encode(png).decode()
    return f"<img alt='{esc(title)}' src='data:image/png;base64,{data}'>"


def table(
    headers: Sequence[str],
    rows: Iterable[tuple[str, Sequence[str]]],
    text_columns: Sequence[int] = (),
) -> list[str]:
    """A table's lines: the header row, then one row per (css class or "", cells) pair.

    Cells are plain text (escaped here); columns in `text_columns` are left-aligned, the
    rest (numbers) right-aligned.
    """
    lines = ["<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>"]
    for css, cells in rows:
        attr = f" class='{css}'" if css else ""
        tds = "".join(
            f"<td class='text'>{esc(c)}</td>" if i in text_columns else f"<td>{esc(c)}</td>"
            for i, c in enumerate(cells)
        )
        lines.append(f"<tr{attr}>{tds}</tr>")
    lines.append("</table>")
    return lines
