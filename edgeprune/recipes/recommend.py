"""Which variant to ship on a device: the Pareto front of latency vs accuracy, and the pick.

The pick is the fastest variant whose top-1 is at most `budget` percentage points below
the baseline (the recipe's base model before any step); the runner-up is the next
fastest within the budget, and the reasons say what each trades. Pure functions over
plain numbers, so the rule is tested directly and explained the same everywhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from edgeprune.recipes.formatting import ms, pct

TOLERANCE = 1e-9


@dataclass(frozen=True)
class Candidate:
    """One variant on one device: its best p50 over the thread counts measured."""

    variant: str
    p50_ms: float
    threads: int
    accuracy: float | None  # top-1 in [0, 1], host (or device when the host has none)
    p90_ms: float | None = None
    gzip_bytes: int | None = None

    def drop_points(self, baseline: float | None) -> float | None:
        """Percentage points below the baseline (negative = better than the baseline)."""
        if baseline is None or self.accuracy is None:
            return None
        return (baseline - self.accuracy) * 100.0


@dataclass
class Recommendation:
    device: str
    baseline: float | None
    budget: float | None
    choice: Candidate | None
    runner_up: Candidate | None
    reason: str
    runner_up_reason: str = ""
    over_budget_faster: list[str] = field(default_factory=list)
    pareto: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["choice"] = asdict(self.choice) if self.choice else None
        data["runner_up"] = asdict(self.runner_up) if self.runner_up else None
        return data


def pareto_front(candidates: list[Candidate]) -> list[Candidate]:
    """Variants no other variant beats on both latency and accuracy, fastest first."""
    known = sorted(
        (c for c in candidates if c.accuracy is not None),
        key=lambda c: (c.p50_ms, -(c.accuracy or 0.0)),
    )
    front: list[Candidate] = []
    best = -1.0
    for candidate in known:
        assert candidate.accuracy is not None
        if candidate.accuracy > best + TOLERANCE:
            front.append(candidate)
            best = candidate.accuracy
    return front


def within_budget(candidate: Candidate, baseline: float | None, budget: float | None) -> bool:
    drop = candidate.drop_points(baseline)
    if budget is None or baseline is None:
        return True
    return drop is not None and drop <= budget + TOLERANCE


def recommend(
    device: str,
    candidates: list[Candidate],
    baseline: float | None,
    budget: float | None,
) -> Recommendation:
    """The fastest variant within the accuracy budget, the runner-up, and why."""
    by_speed = sorted(candidates, key=lambda c: (c.p50_ms, -(c.accuracy or 0.0), c.variant))
    front = [c.variant for c in pareto_front(candidates)]
    if not by_speed:
        return Recommendation(device, baseline, budget, None, None, "no variant was measured")
    judged = budget is not None and baseline is not None
    eligible = [c for c in by_speed if within_budget(c, baseline, budget)]
    if not eligible:
        best = max((c for c in by_speed if c.accuracy is not None), key=lambda c: c.accuracy or 0.0)
        return Recommendation(
            device,
            baseline,
            budget,
            None,
            None,
            f"no variant is within {budget:g} point(s) of the baseline's top-1 "
            f"{pct(baseline)}; the most accurate is {best.variant} ({pct(best.accuracy)}, "
            f"{best.drop_points(baseline):.1f} points below): raise the budget or train longer",
            pareto=front,
        )
    choice = eligible[0]
    faster = [c for c in by_speed if c.p50_ms < choice.p50_ms]
    if judged:
        reason = (
            f"fastest of {len(eligible)} variant(s) within {budget:g} point(s) of the baseline's "
            f"top-1 {pct(baseline)}: p50 {ms(choice.p50_ms)} ms at {choice.threads} thread(s), "
            f"top-1 {pct(choice.accuracy)}"
        )
    else:
        why = "no accuracy budget" if budget is None else "accuracy unknown (no data)"
        reason = (
            f"fastest of {len(eligible)} measured variant(s) ({why}): p50 "
            f"{ms(choice.p50_ms)} ms at {choice.threads} thread(s)"
        )
    over = [
        f"{c.variant} ({ms(c.p50_ms)} ms, top-1 {pct(c.accuracy)}, "
        + (
            "accuracy unknown)"
            if c.accuracy is None
            else f"{c.drop_points(baseline):.1f} points below the baseline)"
        )
        for c in faster
    ]
    if over:
        reason += "; faster but over the budget: " + "; ".join(over)
    runner = eligible[1] if len(eligible) > 1 else None
    return Recommendation(
        device,
        baseline,
        budget,
        choice,
        runner,
        reason,
        _runner_up_reason(choice, runner),
        over,
        front,
    )


def _runner_up_reason(choice: Candidate, runner: Candidate | None) -> str:
    if runner is None:
        return "no other variant is within the budget"
    ratio = runner.p50_ms / choice.p50_ms if choice.p50_ms else float("inf")
    text = f"{ratio:.2f}× slower (p50 {ms(runner.p50_ms)} ms)"
    if runner.accuracy is not None and choice.accuracy is not None:
        diff = (runner.accuracy - choice.accuracy) * 100.0
        text += f", top-1 {pct(runner.accuracy)} ({diff:+.1f} points vs the pick)"
        if diff > TOLERANCE:
            text += "; take it if those points are worth the time"
    if runner.gzip_bytes and choice.gzip_bytes and runner.gzip_bytes < choice.gzip_bytes:
        text += f"; smaller on the wire ({runner.gzip_bytes / 1e3:.0f} kB gzip vs {choice.gzip_bytes / 1e3:.0f} kB)"
    return text
