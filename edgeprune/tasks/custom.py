"""A custom task: the user's own metric function, named on purpose (`metric FILE.py:fn`).

The function is imported only through edgeprune.user_code, called as fn(y_true, y_pred)
and must return {name: finite number}. Its metric names are learned from the first call
unless the caller declared the deciding one (a recipe's `metric:` and its direction). With
one model output y_pred is that array; with several it is {output name: array}; y_true is
the data's labels as loaded (one array, or {name: array} for `y_<name>` labels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeprune.errors import UserError
from edgeprune.tasks.base import FRACTION, VALUE, Metric, OutputInfo, Task
from edgeprune.user_code import load_callable

if TYPE_CHECKING:
    from edgeprune.data import Dataset

UNITS = (FRACTION, VALUE)


class CustomTask(Task):
    """Scores from the user's fn(y_true, y_pred) -> {name: value}; `decides` picks the metric."""

    name = "custom"

    def __init__(
        self,
        metric: str,
        decides: str | None = None,
        higher_is_better: bool | None = None,
        unit: str | None = None,
    ) -> None:
        self.spec = str(metric)
        self.function = load_callable(self.spec, "metric")
        if unit is not None and unit not in UNITS:
            raise UserError(
                f"unit {unit!r} of metric {self.spec} is not one of {', '.join(UNITS)}",
                params=("metric",),
            )
        self.decides = decides
        self.higher_is_better = True if higher_is_better is None else bool(higher_is_better)
        self.unit = unit or VALUE
        self.output_names: list[str] | None = None
        self.metrics: tuple[Metric, ...] = (
            (self._metric(decides, self.higher_is_better),) if decides else ()
        )

    def _metric(self, name: str, higher_is_better: bool = True) -> Metric:
        return Metric(name, name, higher_is_better=higher_is_better, unit=self.unit)

    @property
    def primary(self) -> Metric:
        if not self.metrics:
            raise UserError(
                f"metric {self.spec} has not been called yet, so its deciding metric is unknown; "
                "name it (a recipe's metric:)",
                params=("metric",),
            )
        return self.metrics[0]

    def check(self, data: Dataset, outputs: Sequence[OutputInfo], model_name: str) -> None:
        if not data.has_labels:
            raise UserError(
                f"dataset {data.name!r} has no labels (x only); metric {self.spec} needs y_true",
                params=("data",),
            )
        self.output_names = [o.name for o in outputs]

    def score(self, data: Dataset, outputs: Sequence[np.ndarray]) -> dict[str, float]:
        y_true = data.y_val if data.y_val is not None else data.ground_truth
        if len(outputs) == 1:
            y_pred: Any = outputs[0]
        else:
            names = self.output_names or [f"output_{i}" for i in range(len(outputs))]
            y_pred = dict(zip(names, outputs, strict=True))
        try:
            result = self.function(y_true, y_pred)
        except UserError:
            raise
        except Exception as exc:
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            raise UserError(
                f"metric {self.spec} failed: {type(exc).__name__}: {first}", params=("metric",)
            ) from None
        scores = self._validated(result)
        self._learn(scores)
        return scores

    def _validated(self, result: Any) -> dict[str, float]:
        if not isinstance(result, dict) or not result:
            raise UserError(
                f"metric {self.spec} returned {type(result).__name__}; it must return a "
                "non-empty dict of name -> finite number",
                params=("metric",),
            )
        scores: dict[str, float] = {}
        for key, value in result.items():
            if isinstance(value, np.ndarray) and value.size == 1:
                value = value.reshape(()).item()
            if (
                not isinstance(key, str)
                or not key
                or isinstance(value, bool)
                or not isinstance(value, (Real, np.number))
                or not math.isfinite(float(value))
            ):
                raise UserError(
                    f"metric {self.spec} returned {key!r}: {value!r}; it must return a dict of "
                    "name -> finite number",
                    params=("metric",),
                )
            scores[key] = float(value)
        if self.decides is not None and self.decides not in scores:
            raise UserError(
                f"metric {self.spec} returned {', '.join(scores)} but the deciding metric is "
                f"{self.decides!r}",
                params=("metric",),
            )
        return scores

    def _learn(self, scores: dict[str, float]) -> None:
        """Metrics as returned, the deciding one first (its direction as declared)."""
        first = self.decides or next(iter(scores))
        learned = [self._metric(first, self.higher_is_better)]
        learned.extend(self._metric(name) for name in scores if name != first)
        self.metrics = tuple(learned)

    def default_loss(self, model: Any) -> Any:
        raise UserError(
            f"task custom (metric {self.spec}) has no default loss; give loss (a Keras loss "
            "name or FILE.py:fn) or compile the model with one",
            params=("loss",),
        )
