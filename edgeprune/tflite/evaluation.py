"""Accuracy on the validation split, and output parity between two models.

Works on any pair of formats (Keras, SavedModel, .tflite of any quantization), because a
pruned or quantized model is only worth shipping if it still answers like the original.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgeprune.data import Dataset, check_fits, load_dataset
from edgeprune.errors import UserError
from edgeprune.tflite.options import EvaluateOptions
from edgeprune.tflite.predictors import Predictor, load_predictor


@dataclass
class Parity:
    """How far two models' outputs are apart on the same samples."""

    reference: str
    max_abs_diff: float
    mean_abs_diff: float
    top1_agreement: float
    reference_top1: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EvaluationReport:
    model: str
    kind: str
    dataset: str
    split: str
    samples: int
    classes: int
    top1: float
    top5: float | None
    runtime: dict[str, Any] | None
    notes: list[str]
    reference: Parity | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reference"] = self.reference.to_dict() if self.reference else None
        return data


def top_k_accuracy(outputs: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Fraction of samples whose label is among the k highest outputs."""
    if k == 1:
        return float(np.mean(outputs.argmax(axis=1) == labels))
    top = np.argpartition(-outputs, kth=k - 1, axis=1)[:, :k]
    return float(np.mean((top == labels[:, None]).any(axis=1)))


def output_parity(
    outputs: np.ndarray, reference: np.ndarray, reference_label: str = "reference"
) -> Parity:
    if outputs.shape != reference.shape:
        raise UserError(
            f"outputs of shape {outputs.shape} cannot be compared with {reference_label!r}, "
            f"whose outputs are {reference.shape}; compare two versions of the same model"
        )
    diff = np.abs(outputs.astype(np.float64) - reference.astype(np.float64))
    return Parity(
        reference=reference_label,
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        top1_agreement=float(np.mean(outputs.argmax(axis=1) == reference.argmax(axis=1))),
    )


def evaluate(
    model: str | os.PathLike[str] | Any,
    dataset: Dataset | str | os.PathLike[str],
    *,
    reference: str | os.PathLike[str] | Any | None = None,
    batch_size: int = 64,
    custom_objects: str | None = None,
) -> EvaluationReport:
    """Top-1 (and top-5 when there are more than 5 classes) of `model` on the validation split."""
    EvaluateOptions.create(
        data=dataset, reference=reference, batch_size=batch_size, custom_objects=custom_objects
    )
    predictor = load_predictor(model, custom_objects=custom_objects)
    data = dataset_for(dataset, predictor.input_shape)
    if hasattr(predictor, "batch_size"):
        predictor.batch_size = batch_size
    reference_predictor = (
        load_predictor(reference, custom_objects=custom_objects) if reference is not None else None
    )
    outputs = _classify(predictor, data)
    classes = int(outputs.shape[1])
    report = EvaluationReport(
        model=predictor.label,
        kind=predictor.kind,
        dataset=data.name,
        split="validation",
        samples=len(data.y_val),
        classes=classes,
        top1=top_k_accuracy(outputs, data.y_val, 1),
        top5=top_k_accuracy(outputs, data.y_val, 5) if classes > 5 else None,
        runtime=getattr(predictor, "runtime", None),
        notes=list(predictor.notes),
    )
    if reference_predictor is not None:
        reference_outputs = _classify(reference_predictor, data)
        parity = output_parity(outputs, reference_outputs, reference_predictor.label)
        parity.reference_top1 = top_k_accuracy(reference_outputs, data.y_val, 1)
        report.reference = parity
        report.notes.extend(f"reference: {note}" for note in reference_predictor.notes)
    return report


def dataset_for(
    spec: Dataset | str | os.PathLike[str], input_shape: tuple[int | None, ...]
) -> Dataset:
    """Load a dataset spec; image folders are resized to the model's input height and width."""
    if isinstance(spec, Dataset):
        return spec
    size = None
    if len(input_shape) == 4 and input_shape[1] and input_shape[2]:
        size = (int(input_shape[1]), int(input_shape[2]))
    return load_dataset(spec, image_size=size)


def predict_dataset(predictor: Predictor, data: Dataset) -> np.ndarray:
    """Validation outputs of one model, after checking the data fits its input."""
    check_fits(data, predictor.input_shape, repr(predictor.label))
    return predictor.predict(data.x_val)


def _classify(predictor: Predictor, data: Dataset) -> np.ndarray:
    outputs = predict_dataset(predictor, data)
    if outputs.ndim != 2:
        raise UserError(
            f"{predictor.label!r} outputs shape {outputs.shape[1:]} per sample; evaluation needs "
            "a classifier with one score per class"
        )
    if outputs.shape[1] < data.num_classes:
        raise UserError(
            f"dataset {data.name!r} has {data.num_classes} classes but {predictor.label!r} "
            f"outputs {outputs.shape[1]} scores; use the dataset the model was trained on"
        )
    return outputs
