"""Input checks shared by the statistics: one clear line naming the parameter at fault."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from edgeprune.errors import UserError


class StatsInputError(UserError, ValueError):
    """Bad input to a statistic; a ValueError too, so numeric callers can catch it as one."""


def latencies(values: Iterable[float], param: str = "latencies_ms") -> np.ndarray:
    """The latencies as a float array: non-empty, finite, not negative."""
    try:
        array = np.asarray(list(values), dtype=float)
    except (TypeError, ValueError):
        raise StatsInputError(
            f"{param} must be a list of numbers (ms); pass the measured latencies",
            params=(param,),
        ) from None
    if array.ndim != 1 or array.size == 0:
        raise StatsInputError(f"{param} is empty; measure at least one run first", params=(param,))
    if not np.all(np.isfinite(array)):
        raise StatsInputError(
            f"{param} holds NaN or infinite values; pass measured latencies only",
            params=(param,),
        )
    if np.any(array < 0):
        raise StatsInputError(
            f"{param} holds a negative latency ({array.min():g} ms); latencies are >= 0",
            params=(param,),
        )
    return array


def fraction(value: float, param: str) -> float:
    """A number strictly between 0 and 1 (a quantile, a confidence level)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise StatsInputError(
            f"{param} must be a number between 0 and 1, got {value!r}", params=(param,)
        ) from None
    if not (0.0 < number < 1.0) or math.isnan(number):
        raise StatsInputError(
            f"{param} must be between 0 and 1 (exclusive), got {value!r}; e.g. 0.95",
            params=(param,),
        )
    return number
