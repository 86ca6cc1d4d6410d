"""A/A pairs measured in several processes: each process has its own fixed speed offset
(memory layout, cache placement). Resampling rounds cannot see it and calls identical
models different; resampling whole process generations covers 1.0."""

from __future__ import annotations

import numpy as np

from edgeprune.stats import (
    PAIRED,
    PAIRED_FEW_PROCESSES,
    PAIRED_PROCESSES,
    LatencySample,
    compare_samples,
)

# Five rounds per process: the more rounds a process holds, the more a round bootstrap
# mistakes its offset for signal (at 2 it covers ~94 % in this simulation, at 5 ~73 %).
GENERATIONS, ROUNDS_PER_PROCESS, ROUND_RUNS = 10, 5, 5


def _aa_pair(
    rng: np.random.Generator, generations: int = GENERATIONS
) -> tuple[LatencySample, LatencySample]:
    """Two identical models; each process of each model is ~5 % off (lognormal), runs in a
    process spread 2 %, and a drift per round hits both alike."""
    rounds = generations * ROUNDS_PER_PROCESS
    runs_per_process = ROUNDS_PER_PROCESS * ROUND_RUNS
    drift = np.repeat(rng.lognormal(0.0, 0.05, rounds), ROUND_RUNS)
    samples = []
    for _ in range(2):
        offset = np.repeat(rng.lognormal(0.0, 0.05, generations), runs_per_process)
        runs = rng.lognormal(0.0, 0.02, rounds * ROUND_RUNS) * offset * drift
        samples.append(
            LatencySample(
                tuple(runs),
                (ROUND_RUNS,) * rounds,
                "g",
                1,
                (ROUNDS_PER_PROCESS,) * generations,
            )
        )
    return samples[0], samples[1]


def _without_processes(sample: LatencySample) -> LatencySample:
    return LatencySample(sample.latencies_ms, sample.rounds, sample.group, sample.threads)


def test_generation_resampling_covers_one_where_round_resampling_does_not() -> None:
    rng = np.random.default_rng(14)
    trials = 200
    by_generation = by_round = 0
    for seed in range(trials):
        base, other = _aa_pair(rng)
        estimate = compare_samples(base, other, resamples=1000, seed=seed)
        assert estimate.method == PAIRED_PROCESSES
        assert estimate.rounds == GENERATIONS * ROUNDS_PER_PROCESS
        by_generation += estimate.ci[0] <= 1.0 <= estimate.ci[1]
        plain = compare_samples(
            _without_processes(base), _without_processes(other), resamples=1000, seed=seed
        )
        assert plain.method == PAIRED
        by_round += plain.ci[0] <= 1.0 <= plain.ci[1]
    assert by_generation / trials >= 0.90
    assert by_round / trials < 0.85  # the fix matters: rounds alone are too sure


def test_few_processes_say_so() -> None:
    base, other = _aa_pair(np.random.default_rng(3), generations=4)
    estimate = compare_samples(base, other, resamples=500)
    assert estimate.method == PAIRED_FEW_PROCESSES
    assert estimate.rounds == 4 * ROUNDS_PER_PROCESS


def test_processes_come_from_the_measurement_and_bad_ones_are_dropped() -> None:
    measurement = {"threads": 1, "latencies_ms": [1.0] * 6, "rounds": [2, 2, 2]}
    good = LatencySample.from_measurement(dict(measurement, processes=[2, 1]), "g")
    assert good.processes == (2, 1)
    assert good.generation_rounds() == [range(0, 2), range(2, 3)]
    bad = LatencySample.from_measurement(dict(measurement, processes=[2, 2]), "g")
    assert bad.processes is None and bad.rounds == (2, 2, 2)
