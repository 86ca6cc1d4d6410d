"""The recommendation rule on constructed candidates: real latency samples (seeded), the
real statistics (`edgeprune.stats`), per-sample correctness for paired accuracy drops."""

from __future__ import annotations

import numpy as np
import pytest

from edgeprune.recipes import Candidate, pareto_front, recommend
from edgeprune.recipes.constraints import ConstraintOptions
from edgeprune.recipes.recommend import Baseline
from edgeprune.stats.latency import LatencySample, quantile_ci

BASELINE = 0.980
SAMPLES = 360


def latencies(median_ms: float, runs: int = 400, seed: int = 0, spread: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return median_ms * np.exp(rng.normal(0.0, spread, runs))


def measured(
    name: str,
    median_ms: float,
    accuracy: float | None,
    *,
    seed: int,
    gzip: int | None = None,
    size: int | None = None,
    peak_kb: int | None = None,
    correct: np.ndarray | None = None,
) -> Candidate:
    """A candidate as the report builds it: percentiles and intervals from its latencies."""
    values = latencies(median_ms, seed=seed)
    return Candidate(
        name,
        float(np.median(values)),
        1,
        accuracy,
        p90_ms=float(np.quantile(values, 0.9)),
        gzip_bytes=gzip,
        size_bytes=size,
        p99_ms=float(np.quantile(values, 0.99)),
        latency_ci={q: quantile_ci(values, q / 100) for q in (50, 90, 99)},
        peak_rss_kb=peak_kb,
        sample=LatencySample(tuple(float(v) for v in values)),
        accuracy_samples=None if correct is None else int(correct.size),
        correct=correct,
    )


def flags(right: int, total: int = SAMPLES, wrong_first: bool = False) -> np.ndarray:
    """`right` correct of `total`; the wrong ones at the end (or the start)."""
    out = np.zeros(total, dtype=bool)
    if wrong_first:
        out[total - right :] = True
    else:
        out[:right] = True
    return out


def base(right: int = 353) -> Baseline:
    correct = flags(right)
    return Baseline(right / SAMPLES, SAMPLES, correct, classes=10)


def test_indistinguishable_latencies_are_tied_and_the_more_accurate_wins():
    baseline = base(353)
    dense = measured("dense-int8", 0.0160, 353 / SAMPLES, seed=1, gzip=40_000, correct=flags(353))
    pruned = measured("pruned-int8", 0.0159, 351 / SAMPLES, seed=2, gzip=22_000, correct=flags(351))
    rec = recommend("local", [pruned, dense], baseline, budget=2.0)
    assert rec.choice is not None and rec.choice.variant == "dense-int8"
    assert rec.runner_up is not None and rec.runner_up.variant == "pruned-int8"
    assert sorted(rec.tied) == ["dense-int8", "pruned-int8"]
    assert "dense-int8 and pruned-int8 are indistinguishable at 95 % (ratio 1.0" in rec.reason
    assert "dense-int8 is 0.56 points more accurate" in rec.reason
    assert "indistinguishable from the pick at 95 % (ratio " in rec.runner_up_reason
    assert "× slower" not in rec.runner_up_reason
    assert rec.comparisons["dense-int8"]["verdict"] == "indistinguishable"


def test_a_tie_of_equal_accuracy_goes_to_the_smaller_model():
    baseline = base(353)
    big = measured("big", 1.00, 353 / SAMPLES, seed=3, gzip=90_000, correct=flags(353))
    small = measured("small", 1.005, 353 / SAMPLES, seed=4, gzip=30_000, correct=flags(353))
    rec = recommend("local", [big, small], baseline, budget=1.0)
    assert rec.choice is not None and rec.choice.variant == "small"
    assert "equally accurate, small is smaller (30.0 kB gzip vs 90.0 kB)" in rec.reason


def test_a_clearly_faster_variant_wins_over_a_more_accurate_one():
    baseline = base(353)
    fast = measured("fast", 0.70, 352 / SAMPLES, seed=5, correct=flags(352))
    slow = measured("slow", 1.00, 353 / SAMPLES, seed=6, correct=flags(353))
    rec = recommend("local", [slow, fast], baseline, budget=2.0)
    assert rec.choice is not None and rec.choice.variant == "fast"
    assert rec.tied == []
    assert "clearly faster than slow at 95 % (ratio 1.4" in rec.reason
    assert "slower than the pick at 95 % (ratio 1.4" in rec.runner_up_reason


def test_constraints_exclude_variants_and_say_by_how_much():
    baseline = base(353)
    lean = 100 * 1024
    fast_big = measured(
        "fast-big", 0.5, 353 / SAMPLES, seed=7, size=900_000, peak_kb=lean, correct=flags(353)
    )
    slow_small = measured(
        "slow-small", 1.5, 353 / SAMPLES, seed=8, size=90_000, peak_kb=lean, correct=flags(353)
    )
    hungry = measured("hungry", 0.9, 353 / SAMPLES, seed=9, size=50_000, peak_kb=300 * 1024)
    limits = ConstraintOptions.create(
        max_latency_ms=1.2, latency_percentile=90, max_model_kb=500, max_peak_memory_mb=200
    )
    rec = recommend("pi4", [fast_big, slow_small, hungry], baseline, 1.0, limits)
    assert rec.choice is None
    excluded = {e.variant: e for e in rec.excluded}
    (size,) = excluded["fast-big"].breaks
    assert size.constraint == "max_model_kb" and size.over_by == pytest.approx(400.0)
    assert "model 900.0 kB is 400.0 kB over 500 kB" in size.text
    (latency,) = excluded["slow-small"].breaks
    assert latency.constraint == "max_latency_ms" and latency.over_by > 0.3
    assert latency.text.startswith("p90 ") and "over 1.2 ms" in latency.text
    assert "(95 % " in latency.text
    memory = {b.constraint: b for b in excluded["hungry"].breaks}["max_peak_memory_mb"]
    assert memory.over_by == pytest.approx(100.0)
    assert rec.reason.startswith("no variant meets every constraint;")
    assert "max_latency_ms" in rec.reason and "max_model_kb" in rec.reason
    assert "400.0 kB over 500 kB" in rec.reason

    loose = recommend(
        "pi4", [fast_big, slow_small], baseline, 1.0, ConstraintOptions.create(max_latency_ms=2.0)
    )
    assert loose.choice is not None and loose.choice.variant == "fast-big"
    assert "meeting p50 <= 2 ms" in loose.reason


def test_a_latency_inside_the_limit_whose_interval_straddles_it_is_met_at_the_limit():
    baseline = base(353)
    only = measured("only", 1.0, 353 / SAMPLES, seed=10, correct=flags(353))
    limit = only.p50_ms * 1.001  # the point is under it, the interval's top is above
    rec = recommend("local", [only], baseline, 1.0, ConstraintOptions.create(max_latency_ms=limit))
    assert rec.choice is not None and rec.choice.variant == "only"
    assert any("at the limit" in note for note in rec.notes)


def test_accuracy_drops_are_judged_on_the_same_samples():
    baseline = base(353)  # 98.1 %
    same = measured("same", 1.0, 353 / SAMPLES, seed=11, correct=flags(353))
    # 13 fewer right, all of them samples the baseline got right: a paired drop of 3.6 points
    worse = measured("worse", 0.5, 340 / SAMPLES, seed=12, correct=flags(340))
    # 2 fewer right: 0.6 points, which 360 samples cannot tell from a 1-point budget
    close = measured("close", 0.6, 351 / SAMPLES, seed=13, correct=flags(351))
    rec = recommend("local", [same, worse, close], baseline, budget=1.0)
    verdicts = {name: info["verdict"] for name, info in rec.accuracy.items()}
    assert verdicts == {"same": "within_budget", "worse": "over_budget", "close": "cannot_tell"}
    assert all(info["paired"] for info in rec.accuracy.values())
    assert rec.choice is not None and rec.choice.variant == "same"
    excluded = {e.variant: e.breaks[0] for e in rec.excluded}
    assert excluded["worse"].constraint == "accuracy_budget"
    assert "over the 1-point budget" in excluded["worse"].text
    assert excluded["close"].text.startswith(
        "cannot tell with 360 samples whether its drop of 0.56"
    )
    assert "samples would decide" in excluded["close"].text
    assert "faster but excluded: worse" in rec.reason
    low, high = rec.accuracy["same"]["top1_ci"]
    assert low < 353 / SAMPLES < high


def test_the_same_accuracies_on_different_samples_are_compared_unpaired():
    baseline = Baseline(353 / SAMPLES, SAMPLES, None, classes=10)
    variant = Candidate("v", 1.0, 1, 353 / SAMPLES, accuracy_samples=SAMPLES)
    rec = recommend("local", [variant], baseline, budget=1.0)
    info = rec.accuracy["v"]
    assert info["paired"] is False and info["verdict"] == "cannot_tell"
    assert rec.choice is None and "cannot tell" in rec.reason


def test_a_baseline_at_chance_level_is_flagged():
    chance = Baseline(0.11, SAMPLES, flags(40), classes=10)
    rec = recommend("local", [Candidate("v", 1.0, 1, 0.11)], chance, budget=None)
    assert any("includes chance level (10.00 % for 10 classes)" in n for n in rec.notes)
    fine = recommend("local", [Candidate("v", 1.0, 1, 0.98)], base(353), budget=None)
    assert not any("chance" in n for n in fine.notes)


# ------------------------------------------------------------ without kept latencies


def candidates() -> list[Candidate]:
    return [
        Candidate("dense-fp32", 2.00, 1, 0.980, gzip_bytes=120_000),
        Candidate("dense-int8", 1.00, 1, 0.978, gzip_bytes=40_000),
        Candidate("pruned-int8", 1.10, 1, 0.984, gzip_bytes=22_000),
        Candidate("channels-int8", 0.60, 1, 0.955, gzip_bytes=15_000),
        Candidate("pruned-fp32", 2.10, 1, 0.975),  # slower and less accurate than dense-fp32
    ]


def test_pareto_front_keeps_only_undominated_variants_fastest_first():
    front = [c.variant for c in pareto_front(candidates())]
    assert front == ["channels-int8", "dense-int8", "pruned-int8"]


def test_without_intervals_the_point_rule_holds_and_says_there_is_no_interval():
    tight = recommend("pi4", candidates(), BASELINE, budget=1.0)
    assert tight.choice is not None and tight.choice.variant == "dense-int8"
    assert tight.runner_up is not None and tight.runner_up.variant == "pruned-int8"
    assert "within 1 point(s)" in tight.reason
    assert "faster but excluded: channels-int8" in tight.reason
    assert "2.50 points below" in tight.reason
    assert "ratio 1.10, no interval" in tight.runner_up_reason
    assert (
        "+0.60 points" in tight.runner_up_reason and "smaller on the wire" in tight.runner_up_reason
    )

    loose = recommend("pi4", candidates(), BASELINE, budget=3.0)
    assert loose.choice is not None and loose.choice.variant == "channels-int8"
    assert loose.over_budget_faster == []

    zero = recommend("pi4", candidates(), BASELINE, budget=0.0)
    assert zero.choice is not None and zero.choice.variant == "pruned-int8"


def test_without_intervals_a_difference_inside_the_noise_floor_is_a_tie():
    close = [Candidate("a", 1.000, 1, 0.970), Candidate("b", 1.010, 1, 0.975)]
    rec = recommend("local", close, 0.975, budget=1.0)
    assert rec.choice is not None and rec.choice.variant == "b"
    assert "no interval" in rec.reason


def test_no_variant_within_the_budget_gives_no_pick_and_says_what_is_closest():
    worse = [Candidate("a", 1.0, 1, 0.90), Candidate("b", 2.0, 1, 0.93)]
    rec = recommend("jetson", worse, BASELINE, budget=1.0)
    assert rec.choice is None and rec.runner_up is None
    assert "the most accurate is b (93.00 %, 5.00 points below)" in rec.reason


def test_without_accuracy_the_fastest_wins_and_the_reason_says_so():
    blind = [Candidate("a", 1.5, 4, None), Candidate("b", 1.2, 1, None)]
    rec = recommend("local", blind, None, budget=1.0)
    assert rec.choice is not None and rec.choice.variant == "b"
    assert "accuracy unknown" in rec.reason and rec.pareto == []


def test_nothing_measured():
    rec = recommend("local", [], BASELINE, 1.0)
    assert rec.choice is None and rec.reason == "no variant was measured"


def test_the_fallback_noise_floor_is_the_statistics_one():
    import importlib

    from edgeprune.stats import compare

    rule = importlib.import_module("edgeprune.recipes.recommend")  # the package exports a function
    assert rule.NOISE_FLOOR == compare.NOISE_FLOOR
