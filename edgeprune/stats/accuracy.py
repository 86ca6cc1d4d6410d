"""Accuracy on a finite validation set: its interval, and a variant's drop against a budget.

A top-1 of 98 % on 360 samples is known to about ±1.5 points (Wilson), more than a typical
1-point budget, so a budget is applied to the interval, not the point: within budget only
when the whole interval is, over budget only when the whole interval is above it, and
otherwise "cannot tell with N samples" with about how many samples would tell. Two models
scored on the same samples are compared on the samples where they disagree (McNemar; a
paired bootstrap for the interval), which is far tighter than two separate intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeprune.stats._checks import StatsInputError, fraction
from edgeprune.text import points

ACCURACY_VERDICTS = ("within_budget", "over_budget", "cannot_tell", "no_budget")
_RESAMPLES = 10_000


def wilson_ci(correct: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion correct/total, as fractions in [0, 1]."""
    from scipy.stats import binomtest

    confidence = fraction(confidence, "confidence")
    correct, total = _counts(correct, total)
    interval = binomtest(correct, total).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


@dataclass(frozen=True)
class AccuracyDrop:
    """How many points a variant loses against the baseline, its interval and verdict."""

    drop_points: float
    ci: tuple[float, float]
    verdict: str
    samples: int
    samples_needed: int | None
    mcnemar_p: float | None
    paired: bool
    budget_points: float | None = None
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (`drop_ci` as [low, high], points)."""
        return {
            "drop_points": self.drop_points,
            "drop_ci": [self.ci[0], self.ci[1]],
            "verdict": self.verdict,
            "samples": self.samples,
            "samples_needed": self.samples_needed,
            "mcnemar_p": self.mcnemar_p,
            "paired": self.paired,
            "budget_points": self.budget_points,
            "confidence": self.confidence,
        }

    def describe(self) -> str:
        """'drop 0.6 points (-0.8–2.0 at 95 %): cannot tell with 360 samples (about 1500 would)'."""
        text = (
            f"drop {points(self.drop_points)} points ({points(self.ci[0])}–{points(self.ci[1])} at "
            f"{self.confidence * 100:g} %)"
        )
        budget = f"{self.budget_points:g}" if self.budget_points is not None else ""
        if self.verdict == "within_budget":
            return f"{text}: within the {budget}-point budget"
        if self.verdict == "over_budget":
            return f"{text}: over the {budget}-point budget"
        if self.verdict == "cannot_tell":
            needed = (
                f" (about {self.samples_needed} would tell)"
                if self.samples_needed is not None
                else ""
            )
            return f"{text}: cannot tell against the {budget}-point budget with {self.samples} samples{needed}"
        return text


def accuracy_drop(
    baseline_correct: Sequence[bool] | np.ndarray,
    variant_correct: Sequence[bool] | np.ndarray,
    budget_points: float | None,
    confidence: float = 0.95,
    seed: int = 0,
) -> AccuracyDrop:
    """The drop on the same samples: paired bootstrap interval and exact McNemar p.

    Only the discordant samples (one model right, the other wrong) move the difference, so
    resampling the n samples is a multinomial draw over (baseline-only right,
    variant-only right, agree): exact and fast. The draw adds one pseudo-sample to each
    discordant cell (as the adjusted Wald interval of Bonett & Price does): with the raw
    counts, 1 or 2 discordant samples give an interval that covers the true drop only
    ~80 % of the time, and 0 give a zero-width one.
    """
    from scipy.stats import binomtest

    confidence = fraction(confidence, "confidence")
    budget = _budget(budget_points)
    base = _correct_flags(baseline_correct, "baseline_correct")
    var = _correct_flags(variant_correct, "variant_correct")
    if base.size != var.size:
        raise StatsInputError(
            f"baseline_correct has {base.size} samples but variant_correct {var.size}; "
            "score both models on the same samples (or use accuracy_drop_unpaired)",
            params=("baseline_correct", "variant_correct"),
        )
    n = int(base.size)
    only_base = int(np.sum(base & ~var))
    only_var = int(np.sum(~base & var))
    drop = (only_base - only_var) / n * 100.0
    rng = np.random.default_rng(seed)
    p_base, p_var = (only_base + 1) / (n + 2), (only_var + 1) / (n + 2)
    draws = rng.multinomial(n, [p_base, p_var, 1.0 - p_base - p_var], size=_RESAMPLES)
    drops = (draws[:, 0] - draws[:, 1]) / n * 100.0
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = (float(x) for x in np.percentile(drops, [tail, 100.0 - tail]))
    discordant = only_base + only_var
    p_value = float(binomtest(only_base, discordant).pvalue) if discordant else 1.0
    return _decide(drop, (low, high), budget, n, p_value, True, confidence)


def accuracy_drop_unpaired(
    baseline_acc: float,
    baseline_n: int,
    variant_acc: float,
    variant_n: int,
    budget_points: float | None,
    confidence: float = 0.95,
) -> AccuracyDrop:
    """The drop between accuracies measured on different samples (Newcombe's hybrid score).

    Accuracies are fractions in [0, 1]. Wider than the paired test: use that one whenever
    both models were scored on the same samples.
    """
    confidence = fraction(confidence, "confidence")
    budget = _budget(budget_points)
    p1 = _accuracy(baseline_acc, "baseline_acc")
    p2 = _accuracy(variant_acc, "variant_acc")
    n1 = _sample_count(baseline_n, "baseline_n")
    n2 = _sample_count(variant_n, "variant_n")
    l1, u1 = wilson_ci(round(p1 * n1), n1, confidence)
    l2, u2 = wilson_ci(round(p2 * n2), n2, confidence)
    drop = p1 - p2
    low = drop - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = drop + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return _decide(
        drop * 100.0, (low * 100.0, high * 100.0), budget, min(n1, n2), None, False, confidence
    )


def samples_needed(
    drop_points: float, ci: tuple[float, float], samples: int, budget_points: float
) -> int | None:
    """About how many samples would put the interval wholly on one side of the budget.

    The interval's half-width shrinks as 1/sqrt(n); None when the drop sits exactly on the
    budget (no number of samples separates them).
    """
    gap = budget_points - drop_points
    if gap == 0:
        return None
    half = (ci[1] - drop_points) if gap > 0 else (drop_points - ci[0])
    if half <= 0:
        return None
    return max(samples + 1, math.ceil(samples * (half / abs(gap)) ** 2))


def _decide(
    drop: float,
    ci: tuple[float, float],
    budget: float | None,
    samples: int,
    p_value: float | None,
    paired: bool,
    confidence: float,
) -> AccuracyDrop:
    needed = None
    if budget is None:
        verdict = "no_budget"
    elif ci[1] <= budget:
        verdict = "within_budget"
    elif ci[0] > budget:
        verdict = "over_budget"
    else:
        verdict = "cannot_tell"
        needed = samples_needed(drop, ci, samples, budget)
    return AccuracyDrop(
        drop_points=drop,
        ci=ci,
        verdict=verdict,
        samples=samples,
        samples_needed=needed,
        mcnemar_p=p_value,
        paired=paired,
        budget_points=budget,
        confidence=confidence,
    )


def _counts(correct: int, total: int) -> tuple[int, int]:
    total = _sample_count(total, "total")
    if isinstance(correct, bool) or not isinstance(correct, (int, np.integer)):
        raise StatsInputError(
            f"correct must be a whole number of samples, got {correct!r}", params=("correct",)
        )
    if not 0 <= int(correct) <= total:
        raise StatsInputError(
            f"correct must be between 0 and total ({total}), got {correct}",
            params=("correct",),
        )
    return int(correct), total


def _sample_count(value: int, param: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 1:
        raise StatsInputError(
            f"{param} must be a whole number of samples >= 1, got {value!r}", params=(param,)
        )
    return int(value)


def _accuracy(value: float, param: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not 0.0 <= number <= 1.0:
        raise StatsInputError(
            f"{param} must be a fraction in [0, 1] (0.975, not 97.5), got {value!r}",
            params=(param,),
        )
    return number


def _budget(value: float | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise StatsInputError(
            f"budget_points must be a number of points >= 0 (e.g. 1.0), got {value!r}",
            params=("budget_points",),
        )
    return number


def _correct_flags(values: Sequence[bool] | np.ndarray, param: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0:
        raise StatsInputError(
            f"{param} must be a non-empty list of per-sample right/wrong flags",
            params=(param,),
        )
    if array.dtype != bool:
        if not np.isin(array, (0, 1)).all():
            raise StatsInputError(
                f"{param} must hold booleans (or 0/1) per sample", params=(param,)
            )
        array = array.astype(bool)
    return array
