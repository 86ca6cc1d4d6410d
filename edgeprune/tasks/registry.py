"""Tasks by name, and the one task the data's labels and the model's outputs admit.

Task classes are named by "module:Class" strings and imported on demand, so asking for
classification never imports the detection stack (pycocotools) and a task still being
written elsewhere fails with one line instead of an ImportError.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeprune.errors import UserError
from edgeprune.tasks.base import TASK_NAMES, OutputInfo, Task

if TYPE_CHECKING:
    from edgeprune.data import Dataset

TASK_CLASSES: dict[str, str] = {
    "classification": "edgeprune.tasks.classification:ClassificationTask",
    "regression": "edgeprune.tasks.regression:RegressionTask",
    "segmentation": "edgeprune.tasks.segmentation:SegmentationTask",
    "detection": "edgeprune.tasks.detection:DetectionTask",
    "custom": "edgeprune.tasks.custom:CustomTask",
}
SETTINGS: dict[str, tuple[str, ...]] = {"detection": ("decode",), "custom": ("metric",)}
"""Which TaskFields each task takes (others are dropped: None or refused by TaskFields)."""


def get_task(
    name: str, *, metric: str | None = None, decode: str | None = None, **extra: Any
) -> Task:
    """The task called `name`; `metric` is the custom task's function, `decode` detection's."""
    if name not in TASK_CLASSES:
        raise UserError(f"`task` {name!r} is not one of {', '.join(TASK_NAMES)}", params=("task",))
    module_name, _, class_name = TASK_CLASSES[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise UserError(
            f"`task` {name} is not available in this edgeprune build", params=("task",)
        ) from None
    cls = getattr(module, class_name)
    given = {"metric": metric, "decode": decode, **extra}
    kwargs = {key: given[key] for key in SETTINGS.get(name, ()) if given.get(key) is not None}
    extra = {k: v for k, v in extra.items() if v is not None}
    if extra and name != "custom":
        raise UserError(
            f"{', '.join(sorted(extra))} are for task custom (a metric function), not {name}",
            params=("task",),
        )
    kwargs.update(extra)
    task: Task = cls(**kwargs)
    return task


def infer_task(
    data: Dataset,
    outputs: Sequence[OutputInfo],
    given: str | None = None,
    *,
    model_name: str = "the model",
    **settings: Any,
) -> Task:
    """`given` if named (after its `check`), else the one task the labels and outputs admit,
    else one line saying what was seen and to give `task`."""
    name = given or _inferred_name(data, outputs, model_name, settings)
    task = get_task(name, **settings)
    task.check(data, outputs, model_name)
    return task


def _inferred_name(
    data: Dataset, outputs: Sequence[OutputInfo], model_name: str, settings: dict[str, Any]
) -> str:
    if settings.get("metric"):
        return "custom"
    if data.ground_truth is not None or settings.get("decode"):
        return "detection"
    labels = data.y_val
    if labels is None:
        raise UserError(
            f"dataset {data.name!r} has no labels (only x); scoring {model_name} needs y "
            "(x alone serves calibration, parity and bench)"
        )
    shapes = [o.shape for o in outputs]
    if isinstance(labels, dict):
        if all(np.issubdtype(np.asarray(v).dtype, np.number) for v in labels.values()):
            return "regression"
        return _unsure(data, labels, shapes, model_name)
    integral = _integral(labels)
    if len(shapes) == 1:
        shape = shapes[0]
        if integral and labels.ndim == 1 and len(shape) == 2:
            units = shape[1]
            classes = int(labels.max()) + 1 if labels.size else 0
            # class scores (their check names a class count the outputs miss), or one
            # binary unit; class ids beyond 0/1 on one unit read as a scalar target
            if units is None or units > 1 or classes <= 2:
                return "classification"
        if integral and _is_mask(labels) and len(shape) in (3, 4) and _same_hw(labels, shape):
            return "segmentation"  # scores [N, H, W, C] or class maps [N, H, W]
    if (
        np.issubdtype(labels.dtype, np.number)
        and len(shapes) == 1
        and _same_shape(labels, shapes[0])
    ):
        return "regression"
    return _unsure(data, labels, shapes, model_name)


def _unsure(
    data: Dataset, labels: Any, shapes: list[tuple[int | None, ...]], model_name: str
) -> str:
    if isinstance(labels, dict):
        seen = ", ".join(f"{k} {_per_sample(np.asarray(v))}" for k, v in labels.items())
    else:
        seen = _per_sample(labels)
    outs = ", ".join(str(_shown(s[1:])) for s in shapes)
    raise UserError(
        f"cannot tell the task from dataset {data.name!r} labels ({seen} per sample) and "
        f"{model_name}'s outputs ({outs}); give `task` ({', '.join(TASK_NAMES)})",
        params=("task",),
    )


def _per_sample(labels: np.ndarray) -> str:
    """What one sample's label is: "one int64", "float32 (5,)"."""
    shape = tuple(labels.shape[1:])
    return f"one {labels.dtype}" if not shape else f"{labels.dtype} {shape}"


def _integral(labels: np.ndarray) -> bool:
    if np.issubdtype(labels.dtype, np.integer):
        return True
    return bool(
        np.issubdtype(labels.dtype, np.floating) and labels.size and np.all(np.mod(labels, 1) == 0)
    )


def _is_mask(labels: np.ndarray) -> bool:
    return labels.ndim == 3 or (labels.ndim == 4 and labels.shape[-1] == 1)


def _same_hw(labels: np.ndarray, shape: tuple[int | None, ...]) -> bool:
    return all(d is None or d == s for d, s in zip(shape[1:3], labels.shape[1:3], strict=True))


def _same_shape(labels: np.ndarray, shape: tuple[int | None, ...]) -> bool:
    a = [d for d in shape[1:] if d != 1]
    b = [d for d in labels.shape[1:] if d != 1]
    return len(a) == len(b) and all(x is None or x == y for x, y in zip(a, b, strict=True))


def _shown(shape: tuple[int | None, ...]) -> tuple[int | str, ...]:
    return tuple("?" if d is None else d for d in shape)
