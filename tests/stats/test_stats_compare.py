"""Speed-up intervals and verdicts on simulated latencies with a known true ratio."""

from __future__ import annotations

import numpy as np
import pytest

from edgeprune.stats import (
    INDEPENDENT,
    NOISE_FLOOR,
    PAIRED,
    LatencySample,
    SpeedupEstimate,
    compare_samples,
    verdict_of,
)

ROUNDS, ROUND_RUNS = 12, 5


def _pair(
    rng: np.random.Generator, ratio: float, drift: float = 0.0, spread: float = 0.2
) -> tuple[LatencySample, LatencySample]:
    """Baseline and other, interleaved in rounds; each round scales both by one drift factor.

    The baseline's true median is `ratio` times the other's, so the true speed-up is `ratio`.
    """
    per_round = np.repeat(rng.lognormal(0.0, drift, ROUNDS), ROUND_RUNS)
    runs = ROUNDS * ROUND_RUNS
    base = rng.lognormal(np.log(ratio), spread, runs) * per_round
    other = rng.lognormal(0.0, spread, runs) * per_round
    rounds = (ROUND_RUNS,) * ROUNDS
    return (
        LatencySample(tuple(base), rounds, "g", 1),
        LatencySample(tuple(other), rounds, "g", 1),
    )


def _unpaired(sample: LatencySample) -> LatencySample:
    return LatencySample(sample.latencies_ms)


@pytest.mark.parametrize("paired", [True, False])
def test_speedup_interval_covers_the_true_ratio(paired: bool) -> None:
    rng = np.random.default_rng(11 if paired else 12)
    covered, trials = 0, 200
    for seed in range(trials):
        base, other = _pair(rng, ratio=1.3, drift=0.1 if paired else 0.0)
        if not paired:
            base, other = _unpaired(base), _unpaired(other)
        estimate = compare_samples(base, other, resamples=1000, seed=seed)
        assert estimate.method == (PAIRED if paired else INDEPENDENT)
        covered += estimate.ci[0] <= 1.3 <= estimate.ci[1]
    assert covered / trials >= 0.93


@pytest.mark.parametrize(("ratio", "verdict"), [(2.0, "faster"), (0.5, "slower")])
def test_clear_differences_get_their_verdict(ratio: float, verdict: str) -> None:
    rng = np.random.default_rng(int(ratio * 10))
    for seed in range(20):
        base, other = _pair(rng, ratio=ratio, drift=0.1)
        assert compare_samples(base, other, seed=seed).verdict == verdict
        assert compare_samples(_unpaired(base), _unpaired(other), seed=seed).verdict == verdict


@pytest.mark.parametrize("paired", [True, False])
def test_identical_distributions_are_indistinguishable(paired: bool) -> None:
    rng = np.random.default_rng(21 if paired else 22)
    calls, trials = 0, 200
    for seed in range(trials):
        base, other = _pair(rng, ratio=1.0, drift=0.1 if paired else 0.0)
        if not paired:
            base, other = _unpaired(base), _unpaired(other)
        estimate = compare_samples(base, other, resamples=1000, seed=seed)
        calls += estimate.verdict == "indistinguishable"
        if estimate.verdict == "indistinguishable":
            assert estimate.ci[0] <= 1.0 + NOISE_FLOOR and estimate.ci[1] >= 1.0 - NOISE_FLOOR
    assert calls / trials >= 0.93


def test_shared_drift_leaves_the_paired_interval_narrow_and_centred() -> None:
    """Rounds drift by ±40 % for both models alike: pairing removes it, pooling does not."""
    rng = np.random.default_rng(31)
    paired_widths, independent_widths, errors, centred = [], [], [], 0
    for seed in range(50):
        base, other = _pair(rng, ratio=1.25, drift=0.4, spread=0.05)
        paired = compare_samples(base, other, seed=seed)
        independent = compare_samples(_unpaired(base), _unpaired(other), seed=seed)
        paired_widths.append(paired.ci[1] - paired.ci[0])
        independent_widths.append(independent.ci[1] - independent.ci[0])
        errors.append(abs(paired.speedup - 1.25))
        centred += paired.ci[0] <= 1.25 <= paired.ci[1] and errors[-1] < 0.1
    assert centred >= 46
    assert np.median(errors) < 0.03
    assert np.median(paired_widths) < 0.2
    assert np.median(paired_widths) * 2.5 < np.median(independent_widths)


def test_the_noise_floor_is_never_called_a_difference() -> None:
    assert verdict_of(1.015, (1.01, 1.02)) == "indistinguishable"
    assert verdict_of(0.985, (0.98, 0.99)) == "indistinguishable"
    assert verdict_of(1.03, (1.01, 1.05)) == "faster"
    assert verdict_of(0.97, (0.95, 0.99)) == "slower"
    assert verdict_of(1.03, (0.99, 1.07)) == "indistinguishable"


def test_an_undecided_real_effect_says_how_many_runs_would_decide() -> None:
    rng = np.random.default_rng(41)
    for _ in range(20):  # a draw where 20 runs show the 6 % effect but cannot decide it
        few = compare_samples(
            LatencySample(tuple(rng.lognormal(np.log(1.06), 0.2, 20))),
            LatencySample(tuple(rng.lognormal(0.0, 0.2, 20))),
        )
        if few.verdict == "indistinguishable" and few.speedup > 1 + NOISE_FLOOR:
            break
    else:
        pytest.fail("no undecided draw of a 6 % effect in 20 tries")
    assert few.runs_to_decide is not None and few.runs_to_decide > 20
    # About that many runs (with some margin) decide it in most repetitions.
    runs = int(few.runs_to_decide * 1.5)
    decided = sum(
        compare_samples(
            LatencySample(tuple(rng.lognormal(np.log(1.06), 0.2, runs))),
            LatencySample(tuple(rng.lognormal(0.0, 0.2, runs))),
            resamples=1000,
            seed=seed,
        ).verdict
        == "faster"
        for seed in range(20)
    )
    assert decided >= 12


def test_decided_or_negligible_comparisons_need_no_more_runs() -> None:
    rng = np.random.default_rng(51)
    base, other = _pair(rng, ratio=2.0)
    assert compare_samples(base, other).runs_to_decide is None
    base, other = _pair(rng, ratio=1.0)
    same = compare_samples(base, other)
    assert same.verdict == "indistinguishable"
    if abs(same.speedup - 1) <= NOISE_FLOOR:
        assert same.runs_to_decide is None


def test_same_seed_same_interval_and_the_dict_form() -> None:
    rng = np.random.default_rng(61)
    base, other = _pair(rng, ratio=1.5)
    first = compare_samples(base, other, seed=3)
    assert compare_samples(base, other, seed=3) == first
    assert first.rounds == ROUNDS and first.runs == (ROUNDS * ROUND_RUNS,) * 2
    data = first.to_dict()
    assert data["speedup"] == first.speedup and data["speedup_ci"] == list(first.ci)
    assert data["verdict"] == "faster" and data["method"] == PAIRED
    assert data["runs"] == [60, 60] and data["rounds"] == ROUNDS
    assert first.describe().startswith(f"{first.speedup:.2f}× (")
    assert "faster at 95 %" in first.describe()


def test_describe_matches_the_documented_form() -> None:
    estimate = SpeedupEstimate(1.01, (0.98, 1.03), "indistinguishable", PAIRED, (50, 50), 10, None)
    assert estimate.describe() == "1.01× (0.98–1.03, indistinguishable at 95 %)"


def test_too_few_runs_or_rounds() -> None:
    short = LatencySample((1.0, 2.0, 3.0, 4.0))
    enough = LatencySample(tuple(np.linspace(1.0, 2.0, 20)))
    assert compare_samples(short, enough) is None
    assert compare_samples(enough, short) is None
    # Four rounds are too few to resample jointly: compared as independent runs.
    four = LatencySample(tuple(np.linspace(1.0, 2.0, 20)), (5, 5, 5, 5), "g", 1)
    assert compare_samples(four, four).method == INDEPENDENT


def test_the_block_resample_median_is_the_median_of_the_resampled_runs() -> None:
    """The bootstrap's shortcut (weights per round) equals building each resample."""
    from edgeprune.stats.compare import _weighted_medians

    rng = np.random.default_rng(71)
    blocks = [rng.lognormal(0.0, 0.3, size) for size in (5, 5, 4, 6, 5, 3)]
    counts = rng.multinomial(len(blocks), np.full(len(blocks), 1 / len(blocks)), size=50)
    expected = [
        np.median(np.concatenate([np.repeat(b, c) for b, c in zip(blocks, row, strict=True)]))
        for row in counts
    ]
    assert _weighted_medians(blocks, counts) == pytest.approx(expected)
