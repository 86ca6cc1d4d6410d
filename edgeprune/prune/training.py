"""What fine-tuning a user's classifier needs: the right loss and a top-1 accuracy.

The loss follows the final layer: softmax -> probabilities, no activation -> logits, a
single sigmoid unit -> binary. Labels are integer class ids (edgeprune.data).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeprune import _tf
from edgeprune.data import Dataset
from edgeprune.errors import UserError

LOGITS = "logits"
PROBABILITIES = "probabilities"
BINARY_LOGITS = "binary_logits"
BINARY_PROBABILITIES = "binary_probabilities"


def output_layer(model: Any) -> Any | None:
    """The layer that makes the model's (single) output, looking inside nested models."""
    outputs = getattr(model, "outputs", None)
    if not outputs:
        return None
    if len(outputs) != 1:
        raise UserError(
            f"the model has {len(outputs)} outputs; fine-tuning needs a classifier with one output"
        )
    history = getattr(outputs[0], "_keras_history", None)
    operation = getattr(history, "operation", None)
    if operation is not None and getattr(operation, "outputs", None):
        return output_layer(operation)
    return operation


def _activation_name(layer: Any) -> str:
    if type(layer).__name__ == "Softmax":
        return "softmax"
    activation = getattr(layer, "activation", None)
    if activation is None:
        return "linear"
    return getattr(activation, "__name__", str(activation))


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
        name = _activation_name(layer)
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


def check_classes(model: Any, dataset: Dataset, kind: str) -> None:
    """The model's outputs must cover every class id in the dataset."""
    units = int(model.output_shape[-1])
    classes = int(max(dataset.y_train.max(initial=0), dataset.y_val.max(initial=0))) + 1
    have = 2 if kind in (BINARY_LOGITS, BINARY_PROBABILITIES) else units
    if classes > have:
        raise UserError(
            f"dataset {dataset.name!r} has {classes} classes but the model outputs {have}; "
            "use a dataset with the model's classes"
        )


def classification_loss(kind: str) -> Any:
    keras = _tf.keras()
    if kind in (BINARY_LOGITS, BINARY_PROBABILITIES):
        return keras.losses.BinaryCrossentropy(from_logits=kind == BINARY_LOGITS)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=kind == LOGITS)


def predict_labels(model: Any, x: np.ndarray, kind: str, batch_size: int = 256) -> np.ndarray:
    out = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    if kind == BINARY_LOGITS:
        return (out.reshape(-1) > 0).astype(np.int64)
    if kind == BINARY_PROBABILITIES:
        return (out.reshape(-1) > 0.5).astype(np.int64)
    return out.argmax(axis=-1)


def top1_accuracy(model: Any, x: np.ndarray, y: np.ndarray, kind: str) -> float:
    """Fraction of samples whose predicted class is the label."""
    if len(x) == 0:
        return 0.0
    return float(np.mean(predict_labels(model, x, kind) == np.asarray(y).reshape(-1)))
