"""Quantile intervals: the order-statistic ranks against a direct binomial computation, and
their coverage of the true median of known skewed and multi-modal distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from edgeprune.stats import LatencySample, order_statistic_ranks, quantile_ci, relative_half_width


def _binomial_cdf(k: int, n: int, q: float) -> float:
    """P(B <= k) for B ~ Binomial(n, q), summed exactly from the pmf (no scipy)."""
    return sum(math.comb(n, i) * q**i * (1 - q) ** (n - i) for i in range(k + 1))


def test_the_documented_ranks_for_fifty_runs() -> None:
    # measurement-statistics.md: n = 50, q = 0.5 -> 1-based ranks 18 and 33.
    assert order_statistic_ranks(50, 0.5) == (18, 33)


@pytest.mark.parametrize(
    ("n", "q"), [(6, 0.5), (20, 0.5), (50, 0.5), (101, 0.5), (200, 0.9), (1000, 0.99)]
)
def test_ranks_are_the_tightest_equal_tailed_pair(n: int, q: float) -> None:
    """Each tail left out holds <= 2.5 %, and moving either rank inwards breaks that."""
    j, k = order_statistic_ranks(n, q)
    below = _binomial_cdf(j - 1, n, q)  # P(B < j)
    above = 1 - _binomial_cdf(k - 1, n, q)  # P(B >= k)
    assert below <= 0.025 + 1e-12 and above <= 0.025 + 1e-12
    assert 1 - below - above >= 0.95
    assert _binomial_cdf(j, n, q) > 0.025  # j + 1 would leave too much below
    assert 1 - _binomial_cdf(k - 2, n, q) > 0.025  # k - 1 would leave too much above


def test_interval_is_the_sorted_runs_at_those_ranks() -> None:
    runs = np.random.default_rng(3).permutation(np.arange(1.0, 51.0))
    assert quantile_ci(runs) == (18.0, 33.0)


def test_too_few_runs_give_no_interval() -> None:
    assert quantile_ci([1.0, 2.0, 3.0, 4.0, 5.0]) is None
    assert quantile_ci([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) == (1.0, 6.0)
    assert quantile_ci(np.ones(300), q=0.99) is None  # p99 needs ~370 runs at 95 %
    assert quantile_ci(np.arange(1.0, 401.0), q=0.99) == (392.0, 400.0)
    assert relative_half_width([1.0, 2.0, 3.0]) is None


def test_relative_half_width_is_the_larger_side_over_the_median() -> None:
    runs = np.arange(1.0, 51.0)  # median 25.5, interval 18..33
    assert relative_half_width(runs) == pytest.approx(max(25.5 - 18, 33 - 25.5) / 25.5)


def _bimodal_median() -> float:
    def cdf(x: float) -> float:
        return 0.6 * norm.cdf(x, 10.0, 0.5) + 0.4 * norm.cdf(x, 14.0, 0.5) - 0.5

    return float(brentq(cdf, 5.0, 20.0))


def _draw(name: str, rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    if name == "lognormal":
        return rng.lognormal(np.log(4.0), 0.4, size), 4.0
    if name == "shifted exponential":
        return 2.0 + rng.exponential(0.5, size), 2.0 + 0.5 * math.log(2)
    component = rng.random(size) < 0.6
    values = np.where(component, rng.normal(10.0, 0.5, size), rng.normal(14.0, 0.5, size))
    return values, _bimodal_median()


@pytest.mark.parametrize("name", ["lognormal", "shifted exponential", "bimodal mixture"])
@pytest.mark.parametrize("runs", [20, 100])
def test_median_interval_covers_the_true_median(name: str, runs: int) -> None:
    samples, true_median = _draw(name, np.random.default_rng(runs), (1000, runs))
    covered = 0
    for sample in samples:
        low, high = quantile_ci(sample)
        covered += low <= true_median <= high
    assert covered / len(samples) >= 0.93


def test_p90_interval_covers_the_true_p90() -> None:
    rng = np.random.default_rng(90)
    true_p90 = float(np.exp(np.log(4.0) + 0.4 * norm.ppf(0.9)))
    covered = 0
    for sample in rng.lognormal(np.log(4.0), 0.4, (500, 200)):
        low, high = quantile_ci(sample, q=0.9)
        covered += low <= true_p90 <= high
    assert covered / 500 >= 0.93


def test_sample_from_a_stored_measurement() -> None:
    measurement = {"threads": 2, "latencies_ms": [1.0, 2.0, 3.0, 4.0], "rounds": [2, 2]}
    sample = LatencySample.from_measurement(measurement, group="g1")
    assert sample == LatencySample((1.0, 2.0, 3.0, 4.0), (2, 2), "g1", 2)
    assert [list(b) for b in sample.round_blocks()] == [[1.0, 2.0], [3.0, 4.0]]
    # Rounds that do not add up (an older record) leave an unpaired sample.
    broken = LatencySample.from_measurement({**measurement, "rounds": [3, 3]}, group="g1")
    assert broken.rounds is None
    assert not broken.pairs_with(sample)
    other = LatencySample((5.0, 6.0), (1, 1), "g1", 2)
    assert sample.pairs_with(other)
    assert not sample.pairs_with(LatencySample((5.0, 6.0), (1, 1), "g1", 1))  # threads
    assert not sample.pairs_with(LatencySample((5.0, 6.0), (1, 1), "g2", 2))  # group


@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
def test_the_host_interval_is_the_agents_interval(q: float) -> None:
    """The agent (stdlib) and the host (scipy) pick the same ranks for every n."""
    from device_agents.protocol import quantile_ranks

    for n in [*range(1, 120), 250, 300, 367, 368, 500, 1000, 5000]:
        assert order_statistic_ranks(n, q) == quantile_ranks(n, q), n
