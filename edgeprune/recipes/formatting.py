"""How the report writes numbers: the same text in the terminal, Markdown, HTML and reasons."""

from __future__ import annotations

from edgeprune.text import percent as pct

__all__ = ["kb", "ms", "num", "pct"]  # pct: the one accuracy format, from edgeprune.text


def ms(value: float | None) -> str:
    """Milliseconds with about four significant digits (the demo model runs in 0.03 ms)."""
    if value is None:
        return "–"
    for limit, digits in ((100, 1), (10, 2), (1, 3)):
        if value >= limit:
            return f"{value:.{digits}f}"
    return f"{value:.4f}"


def kb(value: int | None, unit: str = " kB") -> str:
    return "–" if not value else f"{value / 1e3:.1f}{unit}"


def num(value: float | None, digits: int, suffix: str = "") -> str:
    return "–" if value is None else f"{value:.{digits}f}{suffix}"
