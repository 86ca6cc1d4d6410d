"""What a task is: how a model's outputs are scored against the data's labels, and trained.

Every stage that once assumed a classifier (evaluate, calibration, gradual pruning and
fine-tuning, channels, recipes, reports) asks the run's `Task` instead. A task names its
metrics (the first one decides by default), checks that data and outputs fit before any
work, scores the validation split, and gives the training loss when the model brings none.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from edgeprune.errors import UserError

if TYPE_CHECKING:
    from edgeprune.data import Dataset

TASK_NAMES = ("classification", "regression", "segmentation", "detection", "custom")

FRACTION = "fraction"
"""A metric in [0, 1] (top-1, mIoU, mAP): shown as a percent, budgets in points."""
VALUE = "value"
"""A metric in the data's own units (MAE, RMSE): shown as a number, budgets in those units."""


@dataclass(frozen=True)
class Metric:
    """One number a task reports: its key, which way is better, and how it is written."""

    name: str  # the key in metrics dicts, JSON, the store and recipes: "top1", "rmse", "map50"
    label: str  # what people read: "top-1", "RMSE", "mAP@.5"
    higher_is_better: bool = True
    unit: str = FRACTION  # FRACTION or VALUE

    def better(self, a: float, b: float) -> bool:
        """Whether `a` is strictly better than `b`."""
        return a > b if self.higher_is_better else a < b

    def drop(self, baseline: float, value: float) -> float:
        """How much worse `value` is than `baseline` (positive = worse), in the metric's units."""
        return baseline - value if self.higher_is_better else value - baseline


@dataclass(frozen=True)
class OutputInfo:
    """One model output, as the task sees it before any work: name and shape (batch first)."""

    name: str
    shape: tuple[int | None, ...]


Scorer = Callable[[np.ndarray], dict[str, float]]
"""Scores of a subset of the validation samples, given their indices (for intervals)."""


class Task(ABC):
    """One kind of model: what its outputs mean, how they are scored and trained."""

    name: ClassVar[str]
    metrics: tuple[Metric, ...] = ()
    """What `score` reports (per instance: a custom task learns its names from the user);
    `metrics[0]` decides recipes unless the recipe's `metric:` names another."""

    @property
    def primary(self) -> Metric:
        return self.metrics[0]

    def metric(self, name: str) -> Metric:
        """The metric called `name`, or one line that lists the task's metrics."""
        for metric in self.metrics:
            if metric.name == name:
                return metric
        known = ", ".join(m.name for m in self.metrics)
        raise UserError(
            f"metric {name!r} is not one of {self.name}'s metrics ({known})", params=("metric",)
        )

    @abstractmethod
    def check(self, data: Dataset, outputs: Sequence[OutputInfo], model_name: str) -> None:
        """Fail with one line (before any work) when the data's labels cannot score these outputs."""

    @abstractmethod
    def score(self, data: Dataset, outputs: Sequence[np.ndarray]) -> dict[str, float]:
        """Metrics of the validation split; `outputs` are the model's outputs on `data.x_val`,
        one array per model output in the model's order. Keys include every `metrics` name
        (per-output and per-class extras may follow, e.g. "rmse/out1", "iou/3")."""

    def scorer(self, data: Dataset, outputs: Sequence[np.ndarray]) -> Scorer | None:
        """`score` of a subset of samples by index, for bootstrap intervals and paired
        comparisons; None when a subset cannot be scored cheaply (then no interval)."""
        return None

    @abstractmethod
    def default_loss(self, model: Any) -> Any:
        """The Keras loss when the model brings no compiled loss and `--loss` names none."""

    def primary_record(self) -> dict[str, Any]:
        """The head of every accuracy record a training stage writes (prune, channels, qat):
        the task and its deciding metric, so reports read each record alike."""
        primary = self.primary
        return {
            "task": self.name,
            "metric": primary.name,
            "label": primary.label,
            "unit": primary.unit,
            "higher_is_better": primary.higher_is_better,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.name,
            "metrics": [
                {
                    "name": m.name,
                    "label": m.label,
                    "higher_is_better": m.higher_is_better,
                    "unit": m.unit,
                }
                for m in self.metrics
            ],
        }
