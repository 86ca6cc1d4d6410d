"""Did two measurements share a board? Checked from the agent's own time stamps.

Each `Span` is one measurement (a Result's `started_at` … `finished_at`, on the board's
clock); two spans on one device overlap when one starts before the other finished.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import groupby


@dataclass(frozen=True)
class Span:
    device: str
    start: float
    end: float
    label: str = ""


def overlapping(spans: Iterable[Span]) -> list[tuple[Span, Span]]:
    """Every pair of spans on one device whose times overlap (touching ends do not)."""
    found: list[tuple[Span, Span]] = []
    ordered = sorted(spans, key=lambda s: (s.device, s.start, s.end))
    for _, group in groupby(ordered, key=lambda s: s.device):
        open_spans: list[Span] = []
        for span in group:
            open_spans = [s for s in open_spans if s.end > span.start]
            found.extend((earlier, span) for earlier in open_spans)
            open_spans.append(span)
    return found


def concurrent(spans: Iterable[Span]) -> list[tuple[Span, Span]]:
    """Every pair of spans (any device) that ran at the same time."""
    return overlapping(Span("", s.start, s.end, s.label) for s in spans)
