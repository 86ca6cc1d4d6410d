"""Accuracy intervals and drops against a budget, on known binomial models."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from edgeprune.stats import accuracy_drop, accuracy_drop_unpaired, wilson_ci


@pytest.mark.parametrize("total", [360, 1000])
@pytest.mark.parametrize("p", [0.5, 0.8, 0.9, 0.95, 0.98])
def test_wilson_covers_the_true_accuracy(total: int, p: float) -> None:
    """Exact coverage: the probability of every count whose interval holds p."""
    counts = np.arange(total + 1)
    likely = counts[binom.pmf(counts, total, p) > 1e-9]
    coverage = 0.0
    for correct in likely:
        low, high = wilson_ci(int(correct), total)
        if low <= p <= high:
            coverage += float(binom.pmf(correct, total, p))
    assert coverage >= 0.93


def test_wilson_matches_the_formula() -> None:
    correct, total, z = 353, 360, 1.959963984540054
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z / (1 + z * z / total) * math.sqrt(p * (1 - p) / total + z * z / (4 * total**2))
    assert wilson_ci(correct, total) == pytest.approx((centre - half, centre + half), abs=1e-9)


def _scored(rng: np.random.Generator, n: int, only_base: float, only_var: float):
    """Per-sample right/wrong of two models: each sample is base-only, variant-only or agreed."""
    u = rng.random(n)
    agree_right = rng.random(n) < 0.9
    base = np.where(u < only_base, True, np.where(u < only_base + only_var, False, agree_right))
    var = np.where(u < only_base, False, np.where(u < only_base + only_var, True, agree_right))
    return base, var


@pytest.mark.parametrize(("only_base", "only_var"), [(0.05, 0.03), (0.005, 0.0)])
def test_paired_drop_interval_covers_the_true_drop(only_base: float, only_var: float) -> None:
    """Also with about two discordant samples in 360, where a raw bootstrap covers ~80 %."""
    rng = np.random.default_rng(7)
    true_drop = (only_base - only_var) * 100
    covered = 0
    for seed in range(200):
        base, var = _scored(rng, 360, only_base, only_var)
        drop = accuracy_drop(base, var, budget_points=1.0, seed=seed)
        covered += drop.ci[0] <= true_drop <= drop.ci[1]
    assert covered / 200 >= 0.93


def test_paired_is_tighter_than_unpaired_on_the_same_samples() -> None:
    base, var = _scored(np.random.default_rng(8), 360, 0.02, 0.01)
    paired = accuracy_drop(base, var, budget_points=1.0)
    unpaired = accuracy_drop_unpaired(base.mean(), 360, var.mean(), 360, budget_points=1.0)
    assert paired.paired and not unpaired.paired
    assert paired.drop_points == pytest.approx(unpaired.drop_points)
    assert (paired.ci[1] - paired.ci[0]) * 2 < unpaired.ci[1] - unpaired.ci[0]


def test_mcnemar_is_the_exact_binomial_test_on_the_discordant_samples() -> None:
    base = np.array([True] * 10 + [False] * 2 + [True] * 50)
    var = np.array([False] * 10 + [True] * 2 + [True] * 50)
    drop = accuracy_drop(base, var, budget_points=None)
    # two-sided: 2 * P(B <= 2), B ~ Binomial(12, 1/2)
    assert drop.mcnemar_p == pytest.approx(2 * (1 + 12 + 66) / 4096)
    assert drop.drop_points == pytest.approx(8 / 62 * 100)
    assert drop.verdict == "no_budget" and drop.samples_needed is None


def test_verdicts_against_the_budget() -> None:
    same = np.random.default_rng(9).random(400) < 0.95
    identical = accuracy_drop(same, same, budget_points=1.0)
    assert identical.verdict == "within_budget" and identical.drop_points == 0.0
    assert identical.ci[0] < 0.0 < identical.ci[1] < 1.0  # no disagreement in 400 samples
    assert accuracy_drop(same, same, budget_points=0.1).verdict == "cannot_tell"
    worse = same.copy()
    worse[np.flatnonzero(same)[:40]] = False  # 10 points lost
    assert accuracy_drop(same, worse, budget_points=1.0).verdict == "over_budget"


def test_cannot_tell_says_how_many_samples_would() -> None:
    """0.5 points on 360 samples against 1.5: undecided; the suggested size decides it."""
    small = accuracy_drop_unpaired(0.98, 360, 0.975, 360, budget_points=1.5)
    assert small.verdict == "cannot_tell"
    assert small.samples_needed is not None and small.samples_needed > 360
    assert f"with 360 samples (about {small.samples_needed} would tell)" in small.describe()
    n = int(small.samples_needed * 1.2)
    assert accuracy_drop_unpaired(0.98, n, 0.975, n, budget_points=1.5).verdict == "within_budget"


def test_dict_form() -> None:
    data = accuracy_drop_unpaired(0.9, 1000, 0.8, 1000, budget_points=1.0).to_dict()
    assert data["verdict"] == "over_budget" and data["paired"] is False
    assert data["drop_points"] == pytest.approx(10.0)
    assert data["drop_ci"][0] < 10.0 < data["drop_ci"][1]
    assert data["mcnemar_p"] is None and data["samples"] == 1000
