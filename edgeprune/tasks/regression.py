"""Regression: float targets scored by RMSE (decides, lower is better), MAE and R².

Several outputs are scored one by one ("rmse/<output>", labels `y_<output>` in an .npz);
the overall numbers are the outputs' means, so no output's units swamp another's. The
scores come from scikit-learn's metrics (uniform average over a sample's values).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeprune import _tf
from edgeprune.errors import UserError
from edgeprune.tasks.base import VALUE, Metric, OutputInfo, Scorer, Task

if TYPE_CHECKING:
    from edgeprune.data import Dataset

RMSE = Metric("rmse", "RMSE", higher_is_better=False, unit=VALUE)
MAE = Metric("mae", "MAE", higher_is_better=False, unit=VALUE)
R2 = Metric("r2", "R²", higher_is_better=True, unit=VALUE)


class RegressionTask(Task):
    """RMSE, MAE and R² of each output against its targets, and their means."""

    name = "regression"
    metrics: tuple[Metric, ...] = (RMSE, MAE, R2)

    def __init__(self) -> None:
        self.output_names: list[str] | None = None
        """Set by `check`: the model's output names, to pair dict labels with outputs."""

    def check(self, data: Dataset, outputs: Sequence[OutputInfo], model_name: str) -> None:
        labels = data.y_val
        if labels is None:
            raise UserError(
                f"dataset {data.name!r} has no targets (x only); regression needs y",
                params=("data",),
            )
        self.output_names = [o.name for o in outputs]
        if isinstance(labels, dict):
            missing = [o.name for o in outputs if o.name not in labels]
            if missing:
                raise UserError(
                    f"dataset {data.name!r} has targets for {', '.join(sorted(labels))} but "
                    f"{model_name}'s outputs are {', '.join(o.name for o in outputs)}; name "
                    "them y_<output> in the .npz",
                    params=("data",),
                )
            pairs = [(o, np.asarray(labels[o.name])) for o in outputs]
        else:
            if len(outputs) != 1:
                raise UserError(
                    f"{model_name} has {len(outputs)} outputs but dataset {data.name!r} has one "
                    f"y; give y_<output> for each of {', '.join(o.name for o in outputs)}",
                    params=("data",),
                )
            pairs = [(outputs[0], np.asarray(labels))]
        for output, target in pairs:
            if not np.issubdtype(target.dtype, np.number):
                raise UserError(
                    f"dataset {data.name!r}: targets for {output.name!r} must be numeric, "
                    f"not {target.dtype}",
                    params=("data",),
                )
            if not _fits(tuple(output.shape[1:]), target.shape[1:]):
                raise UserError(
                    f"dataset {data.name!r} has targets of shape {tuple(target.shape[1:])} per "
                    f"sample but {model_name}'s output {output.name!r} is "
                    f"{_shown(output.shape[1:])}",
                    params=("data",),
                )

    def _pairs(
        self, data: Dataset, outputs: Sequence[np.ndarray]
    ) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(output name, targets [N, D], predictions [N, D]) per output, as float64."""
        labels = data.y_val
        if isinstance(labels, dict):
            names = self.output_names or list(labels)[: len(outputs)]
            targets = [labels[name] for name in names]
        elif labels is None:
            raise UserError(f"dataset {data.name!r} has no targets (x only); regression needs y")
        else:
            names = (self.output_names or ["output"])[:1]
            targets = [labels]
        pairs = []
        for name, target, predicted in zip(names, targets, outputs, strict=True):
            n = len(predicted)
            pairs.append(
                (
                    name,
                    np.asarray(target, dtype=np.float64).reshape(n, -1),
                    np.asarray(predicted, dtype=np.float64).reshape(n, -1),
                )
            )
        return pairs

    def score(self, data: Dataset, outputs: Sequence[np.ndarray]) -> dict[str, float]:
        return _scores(self._pairs(data, outputs), None)

    def scorer(self, data: Dataset, outputs: Sequence[np.ndarray]) -> Scorer:
        pairs = self._pairs(data, outputs)
        return lambda index: _scores(pairs, np.asarray(index))

    def default_loss(self, model: Any) -> Any:
        return _tf.keras().losses.MeanSquaredError()


def _scores(
    pairs: list[tuple[str, np.ndarray, np.ndarray]], index: np.ndarray | None
) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    per_output: dict[str, dict[str, float]] = {}
    for name, target, predicted in pairs:
        if index is not None:
            target, predicted = target[index], predicted[index]
        per_output[name] = {
            "rmse": float(np.sqrt(mean_squared_error(target, predicted))),
            "mae": float(mean_absolute_error(target, predicted)),
            "r2": float(r2_score(target, predicted)) if len(target) > 1 else float("nan"),
        }
    scores = {
        key: float(np.mean([values[key] for values in per_output.values()]))
        for key in ("rmse", "mae", "r2")
    }
    if len(per_output) > 1:
        for name, values in per_output.items():
            for key, value in values.items():
                scores[f"{key}/{name}"] = value
    return scores


def _fits(output: tuple[int | None, ...], target: tuple[int, ...]) -> bool:
    """Targets [N] fit outputs [N, 1] and the other way round; otherwise shapes match."""
    out = output[:-1] if output and output[-1] == 1 else output
    tgt = target[:-1] if target and target[-1] == 1 else target
    return len(out) == len(tgt) and all(o is None or o == t for o, t in zip(out, tgt, strict=True))


def _shown(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"
