"""Which metric decides a recipe, which way is better, and how much of it a variant may lose.

A recipe names its task (`task:`), the deciding metric (`metric:`, one of the task's metric
names; default the task's first), its direction (`direction:`, needed only for a custom
metric), the custom task's function (`metric_fn:` FILE.py:fn: the TaskFields `metric`, renamed
in recipes because `metric:` there says which metric decides) and the budget (`budget:` an
absolute number in the metric's units: points for fractions as `accuracy_budget` always was,
or a percent of the baseline, `budget: 2%`). All of it is checked when the recipe is loaded,
before any work, each bad value one line with its file:line.

The metric names per task are listed here (not imported from the task classes) so loading a
recipe needs neither TensorFlow nor pycocotools; the task's own `Metric` replaces the entry
at run time when it has one of the same name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from edgeprune.recipes.yaml_source import LineIndex
from edgeprune.tasks.base import FRACTION, TASK_NAMES, VALUE, Metric
from edgeprune.text import metric_value, points

TOP1 = Metric("top1", "top-1")
KNOWN_METRICS: dict[str, tuple[Metric, ...]] = {
    "classification": (TOP1, Metric("top5", "top-5")),
    "regression": (
        Metric("rmse", "RMSE", False, VALUE),
        Metric("mae", "MAE", False, VALUE),
        Metric("r2", "R²", True, VALUE),
    ),
    "segmentation": (
        Metric("miou", "mIoU", True, FRACTION),
        Metric("pixel_accuracy", "pixel accuracy", True, FRACTION),
    ),
    "detection": (
        Metric("map", "mAP@[.5:.95]", True, FRACTION),
        Metric("map50", "mAP@.5", True, FRACTION),
    ),
    "custom": (),
}
DIRECTIONS = ("higher", "lower")
DEFAULT_POINTS = 1.0
"""The budget of a fraction metric when the recipe gives none (as `accuracy_budget` was)."""
DEFAULT_PERCENT = 1.0
"""The budget of a value metric (RMSE...) when the recipe gives none: 1 % of the baseline."""
_PERCENT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*%\s*$")


@dataclass(frozen=True)
class Decision:
    """What a recipe decides in: its task (None: inferred), the metric and the budget."""

    task: str | None
    metric: Metric
    budget: float | None  # absolute: points for FRACTION metrics, the metric's units else
    percent: float | None = None  # the budget as a percent of the baseline (then budget None)
    metric_fn: str | None = None

    @property
    def is_top1(self) -> bool:
        return self.metric.name == TOP1.name

    def budget_for(self, baseline: float | None) -> float | None:
        """The budget in the metric's budget units (points / units) against this baseline."""
        if self.percent is None:
            return self.budget
        if baseline is None:
            return None
        scale = 100.0 if self.metric.unit == FRACTION else 1.0
        return abs(baseline) * scale * self.percent / 100.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "name": self.metric.name,
            "label": self.metric.label,
            "higher_is_better": self.metric.higher_is_better,
            "unit": self.metric.unit,
            "budget": self.budget,
            "budget_percent": self.percent,
        }


def metric_from(record: dict[str, Any] | None) -> Metric:
    """The deciding metric kept in a run's record (top-1 for runs from before tasks)."""
    if not record:
        return TOP1
    return Metric(
        str(record.get("name", "top1")),
        str(record.get("label", record.get("name", "top-1"))),
        bool(record.get("higher_is_better", True)),
        str(record.get("unit", FRACTION)),
    )


# ---------------------------------------------------------------- how it is written


def value_text(metric: Metric, value: float | None, unit: bool = True) -> str:
    """A metric's value: fractions as a percent (2 decimals), values with 4 significant digits."""
    return metric_value(value, metric.unit, unit)


def drop_value(metric: Metric, baseline: float, value: float) -> float:
    """How much worse than the baseline, in budget units (points for fractions)."""
    return metric.drop(baseline, value) * (100.0 if metric.unit == FRACTION else 1.0)


def drop_text(metric: Metric, drop: float | None, signed: bool = False) -> str:
    """'0.25 points' for fractions, '0.0123' (4 significant digits) for values."""
    if metric.unit == FRACTION:
        return f"{points(drop, signed)} points"
    if drop is None:
        return "–"
    drop = 0.0 if abs(drop) < 1e-7 else drop + 0.0  # a float32 round trip is no change
    return f"{drop:+.4g}" if signed else f"{drop:.4g}"


def budget_text(metric: Metric, budget: float | None) -> str:
    """'1-point' / '0.05 RMSE' (the budget as the reasons say it)."""
    if budget is None:
        return "no"
    if metric.unit == FRACTION:
        return f"{budget:g}-point"
    return f"{budget:.4g} {metric.label}"


def axis_label(metric: Metric) -> str:
    """The plot axis: 'top-1 accuracy (%)', 'mIoU (%)', 'RMSE (lower is better)'."""
    if metric.name == TOP1.name:
        return "top-1 accuracy (%)"
    if metric.unit == FRACTION:
        return f"{metric.label} (%)"
    return f"{metric.label} ({'higher' if metric.higher_is_better else 'lower'} is better)"


# ---------------------------------------------------------------- from the recipe


def decision_of(spec: Any, raw: dict[str, Any], index: LineIndex) -> Decision:
    """The recipe's Decision; any bad `task`/`metric`/`direction`/`metric_fn`/`budget` is one
    line with its file:line (spec: the validated RecipeFile, raw: the file as parsed)."""
    task = spec.task
    if spec.metric_fn is not None and task not in (None, "custom"):
        raise index.error(
            ("metric_fn",),
            f"metric_fn is the custom task's function; task {task} has its own metrics "
            "(metric: names which one decides)",
        )
    if task is None and spec.metric_fn is not None:
        task = "custom"
    if task == "custom" and spec.metric_fn is None:
        raise index.error(
            ("task",),
            "task custom needs metric_fn: FILE.py:fn (or pkg.module:fn) returning {name: value}",
        )
    if spec.metric_fn is not None and ":" not in spec.metric_fn:
        raise index.error(
            ("metric_fn",), f"metric_fn {spec.metric_fn!r} should be FILE.py:fn or pkg.module:fn"
        )
    metric = _metric(spec, task, index)
    budget, percent = _budget(spec, raw, metric, index)
    return Decision(task, metric, budget, percent, spec.metric_fn)


def _metric(spec: Any, task: str | None, index: LineIndex) -> Metric:
    name, direction = spec.metric, spec.direction
    if task == "custom":
        if name is None:
            raise index.error(
                ("metric_fn",),
                "a custom task needs metric: NAME (the key of metric_fn's dict that decides)",
            )
        if direction is None:
            raise index.error(
                ("metric",), f"custom metric {name!r} needs direction: higher or lower"
            )
        return Metric(name, name, direction == "higher", VALUE)
    known = (
        KNOWN_METRICS[task]
        if task is not None
        else tuple(m for task_name in TASK_NAMES for m in KNOWN_METRICS[task_name])
    )
    if name is None:
        chosen = known[0] if task is not None else TOP1
    else:
        found = [m for m in known if m.name == name]
        if not found:
            where = f"task {task}'s metrics" if task else "any task's metrics"
            names = ", ".join(m.name for m in known)
            raise index.error(
                ("metric",),
                f"metric {name!r} is not one of {where} ({names}); for your own metric give "
                "task: custom with metric_fn: FILE.py:fn",
            )
        chosen = found[0]
    if direction is not None and (direction == "higher") != chosen.higher_is_better:
        better = "higher" if chosen.higher_is_better else "lower"
        raise index.error(
            ("direction",),
            f"direction {direction} contradicts metric {chosen.name}: {better} is better; "
            "drop direction:",
        )
    return chosen


def _budget(
    spec: Any, raw: dict[str, Any], metric: Metric, index: LineIndex
) -> tuple[float | None, float | None]:
    given = spec.budget
    if given is not None and "accuracy_budget" in raw:
        raise index.error(("budget",), "give budget: or accuracy_budget:, not both")
    if given is None:
        if "accuracy_budget" in raw:
            return spec.accuracy_budget, None
        if metric.unit == FRACTION:
            return DEFAULT_POINTS, None
        return None, DEFAULT_PERCENT
    if isinstance(given, bool):
        raise index.error(("budget",), f"budget should be a number or a percent (got {given})")
    if isinstance(given, (int, float)):
        if given < 0:
            raise index.error(("budget",), f"budget {given:g} must be >= 0")
        if metric.unit == FRACTION and given > 100:
            raise index.error(
                ("budget",), f"budget {given:g} is in points of {metric.label} and must be <= 100"
            )
        return float(given), None
    match = _PERCENT.match(str(given))
    if match is None:
        raise index.error(
            ("budget",),
            f"budget {given!r} should be a number in {_units(metric)} (e.g. 1.0) or a percent "
            "of the baseline (e.g. 2%)",
        )
    percent = float(match.group(1))
    if not 0 <= percent <= 100:
        raise index.error(("budget",), f"budget {given!r} must be a percent in 0-100 %")
    return None, percent


def _units(metric: Metric) -> str:
    return f"points of {metric.label}" if metric.unit == FRACTION else f"{metric.label}'s units"
