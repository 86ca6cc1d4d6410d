"""Classification: integer class ids scored by top-1 (and top-5 beyond 5 classes).

The default loss follows the final layer: softmax -> probabilities, no activation ->
logits, a single sigmoid unit -> binary (the logic gradual pruning and fine-tuning used).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeprune import _tf
from edgeprune.errors import UserError
from edgeprune.tasks.base import Metric, OutputInfo, Scorer, Task
from edgeprune.tasks.outputs import activation_name
from edgeprune.tasks.outputs import output_layer as _output_layer

if TYPE_CHECKING:
    from edgeprune.data import Dataset

LOGITS = "logits"
PROBABILITIES = "probabilities"
BINARY_LOGITS = "binary_logits"
BINARY_PROBABILITIES = "binary_probabilities"

TOP1 = Metric("top1", "top-1")
TOP5 = Metric("top5", "top-5")


def output_layer(model: Any) -> Any | None:
    """The layer that makes a classifier's one output (None for a subclassed model)."""
    outputs = getattr(model, "outputs", None)
    if outputs and len(outputs) != 1:
        raise UserError(
            f"the model has {len(outputs)} outputs; fine-tuning needs a classifier with one output"
        )
    return _output_layer(model)


def output_kind(model: Any, sample: np.ndarray | None = None) -> str:
    """LOGITS, PROBABILITIES, BINARY_LOGITS or BINARY_PROBABILITIES, from the final activation.

    A subclassed model has no layer graph to read; then one batch of `sample` is run and
    outputs that are non-negative rows summing to 1 count as probabilities.
    """
    layer = output_layer(model)
    if layer is None:
        if sample is None:
            raise UserError("cannot tell whether the model outputs logits or probabilities")
        out = np.asarray(model(sample[:8], training=False))
        units = int(out.shape[-1])
        is_probability = bool(np.all(out >= 0) and np.allclose(out.sum(axis=-1), 1.0, atol=1e-3))
        name = ("softmax" if units > 1 else "sigmoid") if is_probability else "linear"
    else:
        units = int(model.output_shape[-1])
        name = activation_name(layer)
    if name == "softmax" and units > 1:
        return PROBABILITIES
    if name == "linear":
        return BINARY_LOGITS if units == 1 else LOGITS
    if name == "sigmoid" and units == 1:
        return BINARY_PROBABILITIES
    where = f"final layer {layer.name!r}" if layer is not None else "the model's output"
    raise UserError(
        f"{where} has activation {name!r} with {units} unit(s); fine-tuning needs softmax "
        "probabilities, linear logits or one sigmoid unit"
    )


def classification_loss(kind: str) -> Any:
    """The Keras loss for integer class ids and outputs of this kind."""
    keras = _tf.keras()
    if kind in (BINARY_LOGITS, BINARY_PROBABILITIES):
        return keras.losses.BinaryCrossentropy(from_logits=kind == BINARY_LOGITS)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=kind == LOGITS)


def class_count(labels: np.ndarray) -> int:
    return int(np.asarray(labels).max(initial=0)) + 1


def check_classes(model: Any, dataset: Dataset, kind: str) -> None:
    """The model's outputs must cover every class id in the dataset (fine-tuning)."""
    if not isinstance(dataset.y_train, np.ndarray) or not isinstance(dataset.y_val, np.ndarray):
        raise UserError(
            f"dataset {dataset.name!r} has no class ids; fine-tuning a classifier needs "
            "integer labels (or give task)",
            params=("task",),
        )
    units = int(model.output_shape[-1])
    classes = max(class_count(dataset.y_train), class_count(dataset.y_val))
    have = 2 if kind in (BINARY_LOGITS, BINARY_PROBABILITIES) else units
    if classes > have:
        raise UserError(
            f"dataset {dataset.name!r} has {classes} classes but the model outputs {have}; "
            "use a dataset with the model's classes"
        )


def predict_labels(model: Any, x: np.ndarray, kind: str, batch_size: int = 256) -> np.ndarray:
    """Predicted class ids of a Keras classifier whose outputs are of `kind`."""
    out = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    if kind == BINARY_LOGITS:
        return (out.reshape(-1) > 0).astype(np.int64)
    if kind == BINARY_PROBABILITIES:
        return (out.reshape(-1) > 0.5).astype(np.int64)
    return out.argmax(axis=-1)


def top1_accuracy(model: Any, x: np.ndarray, y: Any, kind: str) -> float:
    """Fraction of samples whose predicted class is the label."""
    if len(x) == 0:
        return 0.0
    return float(np.mean(predict_labels(model, x, kind) == np.asarray(y).reshape(-1)))


class ClassificationTask(Task):
    """Top-1 and top-5 of class scores [N, C] (or one binary unit [N, 1]) against class ids."""

    name = "classification"
    metrics: tuple[Metric, ...] = (TOP1, TOP5)

    def check(self, data: Dataset, outputs: Sequence[OutputInfo], model_name: str) -> None:
        if len(outputs) != 1:
            raise UserError(
                f"{model_name} has {len(outputs)} outputs; classification scores one output "
                "of class scores (give task regression or custom for several)",
                params=("task",),
            )
        shape = tuple(outputs[0].shape[1:])
        if len(shape) != 1:
            raise UserError(
                f"{model_name} outputs shape {_shown(shape)} per sample; classification needs "
                "one score per class (give task for other outputs)",
                params=("task",),
            )
        labels = data.y_val
        if labels is None or isinstance(labels, dict):
            raise UserError(
                f"dataset {data.name!r} has no class ids; classification needs integer labels",
                params=("data",),
            )
        labels = np.asarray(labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise UserError(
                f"dataset {data.name!r}: classification needs integer class ids of shape [N], "
                f"not {labels.dtype} of shape {labels.shape}",
                params=("data",),
            )
        classes = max(class_count(labels), data.num_classes or 0)
        units = shape[0]
        have = 2 if units == 1 else units
        if have is not None and classes > have:
            raise UserError(
                f"dataset {data.name!r} has {classes} classes but {model_name} outputs {have}; "
                "use the dataset the model was trained on"
            )
        self._set_metrics(have)

    def _set_metrics(self, classes: int | None) -> None:
        self.metrics = (TOP1, TOP5) if classes is None or classes > 5 else (TOP1,)

    def score(self, data: Dataset, outputs: Sequence[np.ndarray]) -> dict[str, float]:
        hits = self._hits(data, outputs)
        return {name: float(np.mean(values)) for name, values in hits.items()}

    def scorer(self, data: Dataset, outputs: Sequence[np.ndarray]) -> Scorer:
        hits = self._hits(data, outputs)

        def subset(index: np.ndarray) -> dict[str, float]:
            return {name: float(np.mean(values[index])) for name, values in hits.items()}

        return subset

    def _hits(self, data: Dataset, outputs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Per sample: whether its label is the top class (and among the top 5)."""
        scores = np.asarray(outputs[0])
        scores = scores.reshape(len(scores), -1)
        labels = np.asarray(data.y_val).reshape(-1)
        units = scores.shape[1]
        if units == 1:  # one binary unit: probabilities in [0, 1] cut at 0.5, else logits at 0
            values = scores[:, 0]
            cut = 0.5 if np.all((values >= 0) & (values <= 1)) else 0.0
            self._set_metrics(2)
            return {"top1": (values > cut).astype(np.int64) == labels}
        self._set_metrics(units)
        hits = {"top1": scores.argmax(axis=1) == labels}
        if units > 5:
            top = np.argpartition(-scores, kth=4, axis=1)[:, :5]
            hits["top5"] = (top == labels[:, None]).any(axis=1)
        return hits

    def default_loss(self, model: Any) -> Any:
        return classification_loss(output_kind(model))


def _shown(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"
