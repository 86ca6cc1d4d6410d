"""The speed-up of one model over a baseline, with a 95 % interval and a verdict.

Runs measured in the same interleaved rounds are compared with a block bootstrap over the
rounds (round i of both models is resampled together), so drift that is slow compared with
a round moves both medians alike and drops out of the ratio. When the agent measured each
model in several fresh processes (`processes`), whole process generations are resampled
instead: one process's memory layout gives it a fixed offset that rounds inside it share,
so rounds alone would call an A/A pair faster. Runs measured apart are
compared with an ordinary bootstrap of the ratio of medians (scipy.stats.bootstrap). Both
read the bootstrap distribution as an expanded percentile interval (Hesterberg), which keeps
95 % coverage with as few as 5 rounds. A speed-up within the noise floor (±2 %) is never called faster or slower, as criterion.rs
does: such a difference does not survive a reboot of the board.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeprune.stats._checks import StatsInputError, fraction
from edgeprune.stats.latency import LatencySample

VERDICTS = ("baseline", "faster", "slower", "indistinguishable")
NOISE_FLOOR = 0.02
MIN_RUNS = 5
MIN_PAIRED_ROUNDS = 5  # fewer rounds give too few distinct resamples to trust
MIN_PAIRED_PROCESSES = 5  # generations needed to resample them instead of rounds
PAIRED = "paired rounds"
PAIRED_PROCESSES = "paired processes"
PAIRED_FEW_PROCESSES = "paired rounds (few processes)"  # said, not silently widened
INDEPENDENT = "independent"
_CELLS_PER_CHUNK = 2_000_000  # bootstrap weights held at once (resamples x runs)


@dataclass(frozen=True)
class SpeedupEstimate:
    """baseline p50 / other p50 (> 1: the other is faster), its interval and verdict."""

    speedup: float
    ci: tuple[float, float]
    verdict: str
    method: str
    runs: tuple[int, int]
    rounds: int | None
    runs_to_decide: int | None
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        """The JSON form every view prints (`speedup_ci` as [low, high])."""
        return {
            "speedup": self.speedup,
            "speedup_ci": [self.ci[0], self.ci[1]],
            "verdict": self.verdict,
            "method": self.method,
            "runs": [self.runs[0], self.runs[1]],
            "rounds": self.rounds,
            "runs_to_decide": self.runs_to_decide,
            "confidence": self.confidence,
        }

    def describe(self) -> str:
        """'1.01× (0.98–1.03, indistinguishable at 95 %)', plus the runs that would decide."""
        text = (
            f"{self.speedup:.2f}× ({self.ci[0]:.2f}–{self.ci[1]:.2f}, "
            f"{self.verdict} at {self.confidence * 100:g} %)"
        )
        if self.runs_to_decide is not None:
            text += f"; about {self.runs_to_decide} runs per model would decide"
        return text


def verdict_of(speedup: float, ci: tuple[float, float], noise_floor: float = NOISE_FLOOR) -> str:
    """faster / slower only when the interval excludes 1 and the effect beats the noise floor."""
    low, high = ci
    if low > 1.0 and speedup > 1.0 + noise_floor:
        return "faster"
    if high < 1.0 and speedup < 1.0 - noise_floor:
        return "slower"
    return "indistinguishable"


def runs_to_decide(
    speedup: float,
    ci: tuple[float, float],
    runs: int,
    verdict: str,
    noise_floor: float = NOISE_FLOOR,
) -> int | None:
    """About how many runs per model would make the interval exclude 1.

    The interval's width shrinks as 1/sqrt(n) (in log space, where a ratio is symmetric);
    None when already decided or when the effect is inside the noise floor, where no
    number of runs gives a verdict.
    """
    if verdict != "indistinguishable" or abs(speedup - 1.0) <= noise_floor:
        return None
    effect = abs(math.log(speedup))
    low, high = ci
    if low <= 0:
        return None
    half = math.log(speedup) - math.log(low) if speedup > 1 else math.log(high) - math.log(speedup)
    if half <= 0:
        return None
    return max(runs + 1, math.ceil(runs * (half / effect) ** 2))


def compare_samples(
    baseline: LatencySample,
    other: LatencySample,
    *,
    noise_floor: float = NOISE_FLOOR,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> SpeedupEstimate | None:
    """The speed-up of `other` over `baseline`; None when either has fewer than 5 runs.

    Paired when both samples come from the same group and thread count and carry rounds
    (at least MIN_PAIRED_ROUNDS common ones): over process generations when both have at
    least MIN_PAIRED_PROCESSES common ones, else over rounds (method PAIRED_FEW_PROCESSES
    when there were processes but too few: the interval may then be too narrow);
    otherwise independent. Same inputs and seed give the same interval.
    """
    confidence = fraction(confidence, "confidence")
    if not (0.0 <= float(noise_floor) < 1.0):
        raise StatsInputError(
            f"noise_floor must be a fraction in [0, 1), got {noise_floor!r}; e.g. 0.02",
            params=("noise_floor",),
        )
    if int(resamples) < 100:
        raise StatsInputError(
            f"resamples must be at least 100, got {resamples!r}", params=("resamples",)
        )
    if len(baseline.latencies_ms) < MIN_RUNS or len(other.latencies_ms) < MIN_RUNS:
        return None
    rng = np.random.default_rng(seed)
    if baseline.pairs_with(other):
        result = _paired(baseline, other, confidence, int(resamples), rng)
    else:
        result = None
    if result is None:
        base = np.asarray(baseline.latencies_ms, dtype=float)
        oth = np.asarray(other.latencies_ms, dtype=float)
        speedup, ci = _independent(base, oth, confidence, int(resamples), rng)
        method, rounds, runs = INDEPENDENT, None, (base.size, oth.size)
    else:
        speedup, ci, rounds, runs, method = result
    verdict = verdict_of(speedup, ci, noise_floor)
    return SpeedupEstimate(
        speedup=speedup,
        ci=ci,
        verdict=verdict,
        method=method,
        runs=runs,
        rounds=rounds,
        runs_to_decide=runs_to_decide(speedup, ci, max(runs), verdict, noise_floor),
        confidence=confidence,
    )


def _ratio(base_median: float, other_median: float) -> float:
    if other_median <= 0:
        raise StatsInputError(
            "latencies_ms of the compared model have a median of 0 ms; no ratio can be "
            "formed (measure with a finer timer or more work per run)",
            params=("latencies_ms",),
        )
    return base_median / other_median


def _paired(
    baseline: LatencySample,
    other: LatencySample,
    confidence: float,
    resamples: int,
    rng: np.random.Generator,
) -> tuple[float, tuple[float, float], int, tuple[int, int], str] | None:
    """Block bootstrap over the common rounds (or process generations, see `_clusters`):
    the same indices for both models.

    None when fewer than MIN_PAIRED_ROUNDS common rounds hold runs of both: the caller
    then compares the runs as independent.
    """
    base_rounds = baseline.round_blocks()
    other_rounds = other.round_blocks()
    common = min(len(base_rounds), len(other_rounds))
    keep = [i for i in range(common) if base_rounds[i].size and other_rounds[i].size]
    if len(keep) < MIN_PAIRED_ROUNDS:
        return None
    clusters = _generations(baseline, other, base_rounds, other_rounds)
    if clusters is not None:
        base_blocks, other_blocks, used_rounds = clusters
        method = PAIRED_PROCESSES
    else:
        base_blocks = [base_rounds[i] for i in keep]
        other_blocks = [other_rounds[i] for i in keep]
        used_rounds = len(keep)
        has_processes = baseline.processes is not None or other.processes is not None
        method = PAIRED_FEW_PROCESSES if has_processes else PAIRED
    base_all = np.concatenate(base_blocks)
    other_all = np.concatenate(other_blocks)
    if base_all.size < MIN_RUNS or other_all.size < MIN_RUNS:
        return None
    speedup = _ratio(float(np.median(base_all)), float(np.median(other_all)))
    # How many times each block is drawn, per resample: (resamples, blocks).
    blocks = len(base_blocks)
    counts = rng.multinomial(blocks, np.full(blocks, 1.0 / blocks), size=resamples)
    ratios = _weighted_medians(base_blocks, counts) / np.maximum(
        _weighted_medians(other_blocks, counts), np.finfo(float).tiny
    )
    ci = _percentile_interval(ratios, _expanded(confidence, blocks))
    return speedup, ci, used_rounds, (int(base_all.size), int(other_all.size)), method


def _generations(
    baseline: LatencySample,
    other: LatencySample,
    base_rounds: list[np.ndarray],
    other_rounds: list[np.ndarray],
) -> tuple[list[np.ndarray], list[np.ndarray], int] | None:
    """Each model's runs per process generation, generation i of both (they ran at the same
    time) kept where both hold runs; with the rounds they span. None when either sample
    has no process info or fewer than MIN_PAIRED_PROCESSES generations pair up."""
    base_gens = baseline.generation_rounds()
    other_gens = other.generation_rounds()
    if base_gens is None or other_gens is None:
        return None
    base_blocks, other_blocks, rounds = [], [], 0
    for base_gen, other_gen in zip(base_gens, other_gens, strict=False):
        base_runs = np.concatenate([base_rounds[r] for r in base_gen])
        other_runs = np.concatenate([other_rounds[r] for r in other_gen])
        if base_runs.size and other_runs.size:
            base_blocks.append(base_runs)
            other_blocks.append(other_runs)
            rounds += min(len(base_gen), len(other_gen))
    if len(base_blocks) < MIN_PAIRED_PROCESSES:
        return None
    return base_blocks, other_blocks, rounds


def _weighted_medians(blocks: list[np.ndarray], counts: np.ndarray) -> np.ndarray:
    """np.median of each resample, where round r's runs appear counts[b, r] times.

    Sorting once and taking cumulative weights gives every resample's median exactly
    (the mean of the two middle runs when the total is even) without building them.
    """
    values = np.concatenate(blocks)
    round_of = np.concatenate([np.full(b.size, r) for r, b in enumerate(blocks)])
    order = np.argsort(values, kind="stable")
    values, round_of = values[order], round_of[order]
    out = np.empty(counts.shape[0])
    step = max(1, _CELLS_PER_CHUNK // values.size)
    for start in range(0, counts.shape[0], step):
        weights = counts[start : start + step][:, round_of]  # (chunk, runs)
        cumulative = np.cumsum(weights, axis=1)
        total = cumulative[:, -1]
        lower_rank = (total + 1) // 2
        upper_rank = total // 2 + 1
        lower = np.argmax(cumulative >= lower_rank[:, None], axis=1)
        upper = np.argmax(cumulative >= upper_rank[:, None], axis=1)
        out[start : start + step] = (values[lower] + values[upper]) / 2.0
    return out


def _independent(
    base: np.ndarray,
    other: np.ndarray,
    confidence: float,
    resamples: int,
    rng: np.random.Generator,
) -> tuple[float, tuple[float, float]]:
    """Bootstrap of the ratio of medians over two independent samples (percentile)."""
    from scipy.stats import bootstrap

    speedup = _ratio(float(np.median(base)), float(np.median(other)))

    def ratio_of_medians(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.median(x, axis=axis) / np.maximum(np.median(y, axis=axis), np.finfo(float).tiny)

    result = bootstrap(
        (base, other),
        ratio_of_medians,
        vectorized=True,
        paired=False,
        n_resamples=resamples,
        batch=max(1, _CELLS_PER_CHUNK // max(base.size, other.size)),
        confidence_level=_expanded(confidence, min(base.size, other.size)),
        method="percentile",
        rng=rng,
    )
    low = float(result.confidence_interval.low)
    high = float(result.confidence_interval.high)
    return speedup, (low, high)


def _expanded(confidence: float, n: int) -> float:
    """The level to read a percentile bootstrap at so small samples still cover.

    A percentile interval from n blocks is too narrow by about sqrt((n-1)/n) and ignores
    the t-distribution's heavier tails; Hesterberg's expanded percentile interval reads
    it at the normal level matching sqrt(n/(n-1)) * t_(n-1).
    """
    from scipy.stats import norm, t

    tail = (1.0 - confidence) / 2.0
    z = math.sqrt(n / (n - 1)) * float(t.ppf(1.0 - tail, n - 1))
    return float(1.0 - 2.0 * norm.sf(z))


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)
