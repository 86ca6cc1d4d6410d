"""Bad input to the statistics: one line naming the parameter, as UserError and ValueError."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeprune.errors import UserError
from edgeprune.stats import (
    LatencySample,
    accuracy_drop,
    accuracy_drop_unpaired,
    compare_samples,
    quantile_ci,
    relative_half_width,
    wilson_ci,
)

RUNS = list(np.linspace(1.0, 2.0, 20))


@pytest.mark.parametrize(
    ("call", "param"),
    [
        (lambda: quantile_ci([]), "latencies_ms"),
        (lambda: quantile_ci([1.0, math.nan, 2.0]), "latencies_ms"),
        (lambda: quantile_ci([1.0, -2.0, 3.0]), "latencies_ms"),
        (lambda: quantile_ci(["fast"]), "latencies_ms"),
        (lambda: quantile_ci(RUNS, q=1.0), "q"),
        (lambda: quantile_ci(RUNS, q=0), "q"),
        (lambda: quantile_ci(RUNS, confidence=95), "confidence"),
        (lambda: relative_half_width(RUNS, q=-0.5), "q"),
        (lambda: LatencySample((1.0, 2.0), rounds=(1, 2)), "rounds"),
        (lambda: LatencySample((1.0, math.inf)), "latencies_ms"),
        (
            lambda: compare_samples(
                LatencySample(tuple(RUNS)), LatencySample(tuple(RUNS)), confidence=1.0
            ),
            "confidence",
        ),
        (
            lambda: compare_samples(
                LatencySample(tuple(RUNS)), LatencySample(tuple(RUNS)), noise_floor=-0.1
            ),
            "noise_floor",
        ),
        (lambda: wilson_ci(11, 10), "correct"),
        (lambda: wilson_ci(1, 0), "total"),
        (lambda: wilson_ci(5, 10, confidence=0.0), "confidence"),
        (lambda: accuracy_drop([True, False], [True], 1.0), "baseline_correct"),
        (lambda: accuracy_drop([], [], 1.0), "baseline_correct"),
        (lambda: accuracy_drop([True, 2], [True, False], 1.0), "baseline_correct"),
        (lambda: accuracy_drop([True], [True], -1.0), "budget_points"),
        (lambda: accuracy_drop_unpaired(97.5, 360, 0.97, 360, 1.0), "baseline_acc"),
        (lambda: accuracy_drop_unpaired(0.975, 360, 0.97, 0, 1.0), "variant_n"),
    ],
)
def test_refused_with_one_line_naming_the_parameter(call, param: str) -> None:
    with pytest.raises(UserError) as caught:
        call()
    assert isinstance(caught.value, ValueError)
    assert param in caught.value.params
    message = str(caught.value)
    assert param in message and "\n" not in message


def test_a_zero_median_cannot_be_a_ratio() -> None:
    zeros = LatencySample((0.0,) * 10)
    with pytest.raises(UserError, match="median of 0 ms"):
        compare_samples(LatencySample(tuple(RUNS)), zeros)
