"""The task's metrics on the validation split, and output parity between two models.

Works on any pair of formats (Keras, SavedModel, .tflite of any quantization), because a
pruned or quantized model is only worth shipping if it still answers like the original.
The task (classification, regression, segmentation, detection, custom) is inferred from
the labels and outputs unless named; x-only data still gives parity with `reference`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgeprune.data import Dataset, check_fits, load_dataset
from edgeprune.errors import UserError
from edgeprune.tasks.base import OutputInfo, Task
from edgeprune.tasks.outputs import resolve_task
from edgeprune.tflite.options import EvaluateOptions
from edgeprune.tflite.predictors import Predictor, load_predictor


@dataclass
class OutputParity:
    """How far one output of two models is apart."""

    name: str
    max_abs_diff: float
    mean_abs_diff: float


@dataclass
class Parity:
    """How far two models' outputs are apart on the same samples (over all outputs, and each)."""

    reference: str
    max_abs_diff: float
    mean_abs_diff: float
    top1_agreement: float | None = None  # classification only
    reference_top1: float | None = None
    outputs: list[OutputParity] = field(default_factory=list)
    reference_metrics: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EvaluationReport:
    model: str
    kind: str
    dataset: str
    split: str
    samples: int
    classes: int | None  # classification only (None otherwise)
    top1: float | None  # classification only
    top5: float | None
    runtime: dict[str, Any] | None
    notes: list[str]
    reference: Parity | None = None
    task: str | None = None  # None: x-only data, parity alone
    metrics: dict[str, float] = field(default_factory=dict)
    metric_info: list[dict[str, Any]] = field(default_factory=list)
    """The task's metrics (name, label, higher_is_better, unit), the deciding one first."""

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
    outputs: np.ndarray | list[np.ndarray],
    reference: np.ndarray | list[np.ndarray],
    reference_label: str = "reference",
    names: list[str] | None = None,
    classification: bool | None = None,
) -> Parity:
    """|diff| per output and over all; top-1 agreement for one output of class scores
    (`classification` None: whenever the single output is [N, C])."""
    ours = outputs if isinstance(outputs, list) else [outputs]
    theirs = reference if isinstance(reference, list) else [reference]
    if len(ours) != len(theirs):
        raise UserError(
            f"the model has {len(ours)} outputs but {reference_label!r} has {len(theirs)}; "
            "compare two versions of the same model"
        )
    names = names or [f"output_{i}" for i in range(len(ours))]
    per: list[OutputParity] = []
    total_max, total_sum, total_count = 0.0, 0.0, 0
    for name, a, b in zip(names, ours, theirs, strict=True):
        if a.shape != b.shape:
            shown = "outputs" if len(ours) == 1 else f"output {name!r}"
            raise UserError(
                f"{shown} of shape {a.shape} cannot be compared with {reference_label!r}, "
                f"whose {shown} is {b.shape}; compare two versions of the same model"
            )
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        per.append(OutputParity(name, float(diff.max()), float(diff.mean())))
        total_max = max(total_max, float(diff.max()))
        total_sum += float(diff.sum())
        total_count += diff.size
    if classification is None:
        classification = len(ours) == 1 and ours[0].ndim == 2 and ours[0].shape[1] > 1
    agreement = None
    if classification:
        agreement = float(np.mean(ours[0].argmax(axis=1) == theirs[0].argmax(axis=1)))
    return Parity(
        reference=reference_label,
        max_abs_diff=total_max,
        mean_abs_diff=total_sum / max(1, total_count),
        top1_agreement=agreement,
        outputs=per,
    )


def evaluate(
    model: str | os.PathLike[str] | Any,
    dataset: Dataset | str | os.PathLike[str],
    *,
    reference: str | os.PathLike[str] | Any | None = None,
    batch_size: int = 64,
    custom_objects: str | None = None,
    task: str | None = None,
    metric: str | None = None,
    decode: str | None = None,
) -> EvaluationReport:
    """The task's metrics of `model` on the validation split (top-1/top-5 for a classifier);
    with `reference`, output parity per output (x-only data: parity alone)."""
    options = EvaluateOptions.create(
        data=dataset,
        reference=reference,
        batch_size=batch_size,
        task=task,
        metric=metric,
        decode=decode,
        custom_objects=custom_objects,
    )
    predictor = load_predictor(model, custom_objects=custom_objects)
    data = dataset_for(dataset, predictor.input_shape)
    if hasattr(predictor, "batch_size"):
        predictor.batch_size = batch_size
    check_fits(data, predictor.input_shape, repr(predictor.label))
    reference_predictor = (
        load_predictor(reference, custom_objects=custom_objects) if reference is not None else None
    )
    if reference_predictor is not None:
        check_fits(data, reference_predictor.input_shape, repr(reference_predictor.label))
    infos = output_infos(predictor, reference_predictor, data)
    run_task: Task | None = None
    if data.has_labels:
        run_task = resolve_task(data, infos, options, repr(predictor.label))
    elif reference_predictor is None:
        raise UserError(
            f"dataset {data.name!r} has no labels (only x); give labels (y) to score the model, "
            "or `reference` to compare outputs",
            params=("reference",),
        )
    outputs = predictor.predict_all(data.x_val)
    if run_task is not None:
        _check_finite(outputs, predictor.label, data.name)
    metrics = run_task.score(data, outputs) if run_task is not None else {}
    classification = run_task is not None and run_task.name == "classification"
    report = EvaluationReport(
        model=predictor.label,
        kind=predictor.kind,
        dataset=data.name,
        split="validation",
        samples=len(data.x_val),
        classes=int(outputs[0].shape[1]) if classification else None,
        top1=metrics.get("top1") if classification else None,
        top5=metrics.get("top5") if classification else None,
        runtime=getattr(predictor, "runtime", None),
        notes=list(predictor.notes),
        task=run_task.name if run_task is not None else None,
        metrics=metrics,
        metric_info=run_task.to_dict()["metrics"] if run_task is not None else [],
    )
    if run_task is None:
        report.notes.append(f"dataset {data.name!r} has no labels: output parity only")
    if reference_predictor is not None:
        reference_outputs = _in_order(
            reference_predictor.predict_all(data.x_val), reference_predictor.outputs, infos
        )
        parity = output_parity(
            outputs,
            reference_outputs,
            reference_predictor.label,
            names=[o.name for o in infos],
            classification=classification if run_task is not None else None,
        )
        if run_task is not None:
            parity.reference_metrics = run_task.score(data, reference_outputs)
            if classification:
                parity.reference_top1 = parity.reference_metrics.get("top1")
        report.reference = parity
        report.notes.extend(f"reference: {note}" for note in reference_predictor.notes)
    return report


def output_infos(
    predictor: Predictor, reference: Predictor | None = None, data: Dataset | None = None
) -> list[OutputInfo]:
    """The model's outputs by name. A .tflite or SavedModel whose outputs are only numbered
    takes the names of a Keras reference with the same outputs, else of the dataset's
    `y_<name>` labels where each label's shape fits exactly one output."""
    infos = predictor.outputs
    if predictor.kind == "keras" or not all(_numbered(o.name) for o in infos):
        return infos
    if reference is not None and reference.kind == "keras":
        named = reference.outputs
        same = len(named) == len(infos) and all(
            tuple(a.shape[1:]) == tuple(b.shape[1:]) for a, b in zip(named, infos, strict=True)
        )
        if same:
            return [OutputInfo(r.name, own.shape) for r, own in zip(named, infos, strict=True)]
    labels = data.y_val if data is not None else None
    if isinstance(labels, dict) and len(labels) == len(infos):
        shapes = {name: _per_sample(np.shape(v)[1:]) for name, v in labels.items()}
        matches = [[n for n, s in shapes.items() if s == _per_sample(o.shape[1:])] for o in infos]
        if all(len(m) == 1 for m in matches) and len({m[0] for m in matches}) == len(infos):
            return [OutputInfo(m[0], o.shape) for m, o in zip(matches, infos, strict=True)]
    return infos


def _in_order(
    outputs: list[np.ndarray], names: list[OutputInfo], wanted: list[OutputInfo]
) -> list[np.ndarray]:
    """A reference's outputs in the model's order when both name the same outputs differently
    ordered (a .tflite whose signature keeps the outputs' names); else as they come."""
    have = [o.name for o in names]
    want = [o.name for o in wanted]
    if have != want and sorted(have) == sorted(want) and len(set(have)) == len(have):
        return [outputs[have.index(name)] for name in want]
    return outputs


def _check_finite(outputs: list[np.ndarray], label: str, dataset: str) -> None:
    """Scores of NaN/inf outputs mean nothing: one line (a weightless conversion reads
    uninitialised variables, a broken int8 scale overflows) instead of a library traceback."""
    for i, out in enumerate(outputs):
        bad = int(np.count_nonzero(~np.isfinite(out)))
        if bad:
            which = "" if len(outputs) == 1 else f" (output {i})"
            raise UserError(
                f"{label!r} gives {bad} non-finite value(s){which} on dataset {dataset!r}; "
                "the model is broken (e.g. converted without its weights): convert it again"
            )


def _numbered(name: str) -> bool:
    return name.startswith("output_") or ":" in name


def _per_sample(shape: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(d for d in shape if d != 1)


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
    """Validation outputs of a one-output model, after checking the data fits its input."""
    check_fits(data, predictor.input_shape, repr(predictor.label))
    return predictor.predict(data.x_val)
