"""Intervals for latency quantiles from the runs alone (no assumption on their distribution).

Latencies on boards are skewed and often multi-modal, so the interval of a quantile comes
from order statistics: the number of runs below the true q-quantile is Binomial(n, q), which
picks the two sorted runs that bracket it with at least the asked confidence.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeprune.stats._checks import StatsInputError, fraction, latencies


@dataclass(frozen=True)
class LatencySample:
    """The runs of one measurement, with what is needed to pair it with another.

    Two samples are paired (measured in the same interleaved rounds) when they share a
    `group` and `threads` and both carry `rounds` (runs per round, in order). `processes`
    (Measurement.processes) is how many of those rounds each fresh child process held, in
    order: generation i of two paired samples ran at the same time.
    """

    latencies_ms: tuple[float, ...]
    rounds: tuple[int, ...] | None = None
    group: str | None = None
    threads: int | None = None
    processes: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        latencies(self.latencies_ms)
        if self.rounds is not None and (
            any(int(r) < 0 for r in self.rounds) or sum(self.rounds) != len(self.latencies_ms)
        ):
            raise StatsInputError(
                f"rounds must be counts of runs per round summing to the "
                f"{len(self.latencies_ms)} latencies, got a sum of {sum(self.rounds)}",
                params=("rounds",),
            )
        if self.processes is not None and (
            self.rounds is None
            or any(int(p) < 1 for p in self.processes)
            or sum(self.processes) != len(self.rounds)
        ):
            raise StatsInputError(
                "processes must be counts of rounds per process (each >= 1) summing to the "
                f"{len(self.rounds or ())} rounds",
                params=("processes",),
            )

    @classmethod
    def from_measurement(cls, measurement: Mapping[str, Any], group: str | None) -> LatencySample:
        """A sample from a stored Measurement dict (row["result"]["measurements"][i]).

        Rounds that do not add up to the kept latencies (an older or damaged record) are
        dropped: the sample is then compared as independent runs, which stays sound. So are
        processes that do not add up to the rounds (then: paired rounds, no generations).
        """
        values = tuple(float(x) for x in measurement.get("latencies_ms") or ())
        raw_rounds = measurement.get("rounds")
        rounds = tuple(int(r) for r in raw_rounds) if raw_rounds else None
        if rounds is not None and (sum(rounds) != len(values) or min(rounds) < 0):
            rounds = None
        raw_processes = measurement.get("processes")
        processes = tuple(int(p) for p in raw_processes) if raw_processes else None
        if processes is not None and (
            rounds is None or sum(processes) != len(rounds) or min(processes) < 1
        ):
            processes = None
        threads = measurement.get("threads")
        return cls(
            latencies_ms=values,
            rounds=rounds,
            group=group,
            threads=int(threads) if threads is not None else None,
            processes=processes,
        )

    def pairs_with(self, other: LatencySample) -> bool:
        """True when both were measured in the same interleaved rounds."""
        return (
            self.group is not None
            and self.group == other.group
            and self.threads == other.threads
            and self.rounds is not None
            and other.rounds is not None
        )

    def round_blocks(self) -> list[np.ndarray]:
        """The latencies split per round (one block when there are no rounds)."""
        values = np.asarray(self.latencies_ms, dtype=float)
        if self.rounds is None:
            return [values]
        edges = np.cumsum((0, *self.rounds))
        return [values[a:b] for a, b in itertools.pairwise(edges)]

    def generation_rounds(self) -> list[range] | None:
        """The round indices of each process generation, in order (None: no process info)."""
        if self.processes is None:
            return None
        edges = np.cumsum((0, *self.processes))
        return [range(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def order_statistic_ranks(
    n: int, q: float = 0.5, confidence: float = 0.95
) -> tuple[int, int] | None:
    """1-based ranks (j, k) with P(j <= B < k) >= confidence for B ~ Binomial(n, q).

    Equal tails: at most (1 - confidence)/2 of the probability is left below j and above k,
    so [x_(j), x_(k)] covers the true q-quantile at least `confidence` of the time.
    None when n is too small for that (e.g. n < 6 for the median at 95 %).
    """
    from scipy.stats import binom

    q = fraction(q, "q")
    confidence = fraction(confidence, "confidence")
    if n < 1:
        return None
    tail = (1.0 - confidence) / 2.0
    ks = np.arange(n + 1)
    cdf = binom.cdf(ks, n, q)  # P(B <= k)
    sf = binom.sf(ks, n, q)  # P(B > k)
    # j: the largest rank with P(B <= j-1) <= tail; k: the smallest with P(B >= k) <= tail.
    low_ok = np.nonzero(cdf <= tail * (1 + 1e-12))[0]
    high_ok = np.nonzero(sf[:-1] <= tail * (1 + 1e-12))[0]  # sf[k-1] = P(B >= k)
    if low_ok.size == 0 or high_ok.size == 0:
        return None
    j = int(low_ok.max()) + 1
    k = int(high_ok.min()) + 1
    if j < 1 or k > n or j > k:
        return None
    return j, k


def quantile_ci(
    latencies_ms: Iterable[float], q: float = 0.5, confidence: float = 0.95
) -> tuple[float, float] | None:
    """Distribution-free interval [low, high] (ms) of the q-quantile; None if too few runs."""
    values = np.sort(latencies(latencies_ms))
    ranks = order_statistic_ranks(values.size, q, confidence)
    if ranks is None:
        return None
    j, k = ranks
    return float(values[j - 1]), float(values[k - 1])


def relative_half_width(
    latencies_ms: Iterable[float], q: float = 0.5, confidence: float = 0.95
) -> float | None:
    """max(p - low, high - p) / p of the q-quantile p: how precisely it is known.

    This is what `precision` targets; None when the interval cannot be had or p is 0.
    """
    values = latencies(latencies_ms)
    interval = quantile_ci(values, q, confidence)
    point = float(np.quantile(values, fraction(q, "q")))
    if interval is None or point <= 0:
        return None
    low, high = interval
    return max(point - low, high - point) / point
