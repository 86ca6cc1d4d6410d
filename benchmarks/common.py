"""What every benchmark shares: a result row, a side-by-side timer and the printout."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Ratio:
    """One claim: `measured` against `goal` (lower is better unless `higher_is_better`)."""

    name: str
    measured: float
    goal: float | None = None
    higher_is_better: bool = False
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        return self.measured >= self.goal if self.higher_is_better else self.measured <= self.goal

    def line(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        goal = (
            f" (goal {sign} {self.goal:g}: {'met' if self.met else 'NOT met'})"
            if self.goal is not None
            else ""
        )
        details = ", ".join(f"{k}={_fmt(v)}" for k, v in self.detail.items())
        return f"{self.name}: {self.measured:.3f}{goal}" + (f"  [{details}]" if details else "")


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def interleaved_medians(
    candidates: dict[str, Callable[[], Any]], rounds: int = 5
) -> dict[str, float]:
    """Median wall time of each callable, run in alternation so drift hits all of them alike."""
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, func in candidates.items():
            start = time.perf_counter()
            func()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}
