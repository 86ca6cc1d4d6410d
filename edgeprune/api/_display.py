"""How results show themselves: a few plain lines in a terminal, a small table in a notebook."""

from __future__ import annotations

import html
from collections.abc import Sequence


def ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f} ms"


def ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def text_block(title: str, lines: Sequence[str]) -> str:
    """`Title` then indented lines: what `repr()` of a result prints."""
    return "\n".join([title, *(f"  {line}" for line in lines)])


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns, widths from the content (no terminal width assumed)."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in (header, *rows)
    ]


def html_table(
    title: str,
    header: Sequence[str] | None,
    rows: Sequence[Sequence[object]],
) -> str:
    """A titled HTML table; every value is escaped."""
    parts = [f"<div><strong>{html.escape(title)}</strong><table>"]
    if header:
        cells = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        parts.append(f"<thead><tr>{cells}</tr></thead>")
    parts.append("<tbody>")
    for row in rows:
        cells = "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row)
        parts.append(f"<tr>{cells}</tr>")
    parts.append("</tbody></table></div>")
    return "".join(parts)
