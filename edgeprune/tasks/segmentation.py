"""Segmentation: a class per pixel, scored by mean IoU (decides), pixel accuracy and per-class IoU.

Outputs are per-pixel scores [N, H, W, C] (logits or probabilities; one channel: binary) or
class maps [N, H, W]; labels are masks of class ids [N, H, W] (or [N, H, W, 1]). The scores
come from one confusion matrix per sample (numpy bincount), so a subset's scores are a sum.
A class counts in the mean IoU only where it occurs in the labels or the predictions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeprune import _tf
from edgeprune.errors import UserError
from edgeprune.tasks.base import FRACTION, Metric, OutputInfo, Scorer, Task

if TYPE_CHECKING:
    from edgeprune.data import Dataset

MIOU = Metric("miou", "mIoU", True, FRACTION)
PIXEL_ACCURACY = Metric("pixel_accuracy", "pixel accuracy", True, FRACTION)


def masks(labels: Any) -> np.ndarray:
    """Label masks as [N, H, W] int64."""
    array = np.asarray(labels)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    return array.astype(np.int64, copy=False)


def class_map(outputs: np.ndarray, classes: int | None = None) -> np.ndarray:
    """Predicted class per pixel, [N, H, W], from scores [N, H, W, C] or a class map."""
    out = np.asarray(outputs)
    if out.ndim == 4 and out.shape[-1] > 1:
        return out.argmax(axis=-1)
    if out.ndim == 4:
        out = out[..., 0]
        if classes is None or classes <= 2:  # one channel: a binary mask's score
            binary_probabilities = out.min() >= 0 and out.max() <= 1
            return (out > (0.5 if binary_probabilities else 0.0)).astype(np.int64)
    return np.rint(out).astype(np.int64)


class SegmentationTask(Task):
    """One output of per-pixel class scores (or a class map) against masks."""

    name = "segmentation"
    metrics = (MIOU, PIXEL_ACCURACY)

    def __init__(self) -> None:
        self._classes: int | None = None

    def check(self, data: Dataset, outputs: Sequence[OutputInfo], model_name: str) -> None:
        if len(outputs) != 1:
            raise UserError(
                f"{model_name} has {len(outputs)} outputs; segmentation scores one output of "
                "per-pixel class scores"
            )
        shape = outputs[0].shape
        labels = data.y_val
        if labels is None:
            raise UserError(
                f"dataset {data.name!r} has no labels (only x); segmentation needs masks"
            )
        if isinstance(labels, dict) or not isinstance(labels, np.ndarray):
            raise UserError(f"dataset {data.name!r} holds several y; segmentation needs one mask y")
        mask_ok = labels.ndim == 3 or (labels.ndim == 4 and labels.shape[-1] == 1)
        if not mask_ok:
            raise UserError(
                f"dataset {data.name!r} labels are {tuple(labels.shape[1:])} per sample; "
                "segmentation needs masks of class ids (H, W)"
            )
        if not _integral(labels):
            raise UserError(f"dataset {data.name!r}: masks must hold integer class ids")
        if len(shape) not in (3, 4):
            raise UserError(
                f"{model_name} outputs {_shown(shape[1:])} per sample; segmentation needs "
                "(H, W, classes) scores or an (H, W) class map"
            )
        out_hw = shape[1:3]
        mask_hw = tuple(labels.shape[1:3])
        if any(o is not None and o != m for o, m in zip(out_hw, mask_hw, strict=True)):
            raise UserError(
                f"dataset {data.name!r} masks are {mask_hw[0]}x{mask_hw[1]} but {model_name} "
                f"outputs {_shown(out_hw)[0]}x{_shown(out_hw)[1]}; give masks at the output's size"
            )
        classes = int(max(labels.max(initial=0), _max(data.y_train))) + 1
        channels = shape[3] if len(shape) == 4 else None
        if channels is not None and channels > 1 and classes > channels:
            raise UserError(
                f"dataset {data.name!r} masks have {classes} classes but {model_name} outputs "
                f"{channels} per pixel; use the masks the model was trained on"
            )
        self._classes = max(classes, channels or 0) if channels != 1 else max(classes, 2)

    def score(self, data: Dataset, outputs: Sequence[np.ndarray]) -> dict[str, float]:
        return self.scorer(data, outputs)(np.arange(len(outputs[0])))

    def scorer(self, data: Dataset, outputs: Sequence[np.ndarray]) -> Scorer:
        truth = masks(data.y_val)
        predicted = class_map(outputs[0], self._classes)
        if predicted.shape != truth.shape:
            raise UserError(
                f"dataset {data.name!r} masks are {truth.shape[1:]} but the outputs give "
                f"{predicted.shape[1:]} per sample; give masks at the output's size"
            )
        classes = self._classes or int(max(truth.max(initial=0), predicted.max(initial=0))) + 1
        classes = max(classes, int(truth.max(initial=0)) + 1, int(predicted.max(initial=0)) + 1)
        per_sample = _confusions(truth, predicted, classes)
        names = list(data.class_names) if len(data.class_names) == classes else None

        def score(indices: np.ndarray) -> dict[str, float]:
            confusion = per_sample[indices].sum(axis=0)
            return _scores(confusion, names)

        return score

    def default_loss(self, model: Any) -> Any:
        keras = _tf.keras()
        activation, channels = _final_activation(model)
        if channels == 1:
            return keras.losses.BinaryCrossentropy(from_logits=activation != "sigmoid")
        return keras.losses.SparseCategoricalCrossentropy(from_logits=activation != "softmax")


def _confusions(truth: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """[N, C, C] confusion counts (row: true class, column: predicted); pixels with ids
    outside the classes are ignored (e.g. 255 as "void")."""
    n = len(truth)
    t = truth.reshape(n, -1)
    p = predicted.reshape(n, -1)
    valid = (t >= 0) & (t < classes) & (p >= 0) & (p < classes)
    sample = np.repeat(np.arange(n), t.shape[1]).reshape(n, -1)
    flat = (sample * classes * classes + t * classes + p)[valid]
    return np.bincount(flat, minlength=n * classes * classes).reshape(n, classes, classes)


def _scores(confusion: np.ndarray, names: list[str] | None) -> dict[str, float]:
    total = confusion.sum()
    hits = np.diag(confusion).astype(np.float64)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - hits
    present = union > 0
    iou = np.divide(hits, union, out=np.zeros_like(hits), where=present)
    result = {
        "miou": float(iou[present].mean()) if present.any() else 0.0,
        "pixel_accuracy": float(hits.sum() / total) if total else 0.0,
    }
    for cls in np.flatnonzero(present):
        label = names[cls] if names else str(cls)
        result[f"iou/{label}"] = float(iou[cls])
    return result


def _final_activation(model: Any) -> tuple[str, int]:
    outputs = getattr(model, "outputs", None) or []
    if len(outputs) != 1:
        raise UserError(
            f"the model has {len(outputs)} outputs; segmentation trains one output (give `loss`)",
            params=("loss",),
        )
    channels = int(outputs[0].shape[-1] or 0)
    operation = getattr(getattr(outputs[0], "_keras_history", None), "operation", None)
    while operation is not None and getattr(operation, "outputs", None):  # a nested model
        inner = operation.outputs
        operation = getattr(getattr(inner[0], "_keras_history", None), "operation", None)
    if operation is None:
        return "linear", channels
    if type(operation).__name__ == "Softmax":
        return "softmax", channels
    activation = getattr(operation, "activation", None)
    if activation is None:
        return ("sigmoid" if type(operation).__name__ == "Sigmoid" else "linear"), channels
    return str(getattr(activation, "__name__", activation)), channels


def _integral(labels: np.ndarray) -> bool:
    if np.issubdtype(labels.dtype, np.integer):
        return True
    return bool(np.issubdtype(labels.dtype, np.floating) and np.all(np.mod(labels, 1) == 0))


def _max(labels: Any) -> int:
    if isinstance(labels, np.ndarray) and labels.size:
        return int(labels.max())
    return 0


def _shown(shape: tuple[int | None, ...]) -> tuple[int | str, ...]:
    return tuple("?" if d is None else d for d in shape)
