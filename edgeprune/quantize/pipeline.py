"""File to file: load a float Keras model, wrap it for QAT, fine-tune, save with a manifest.

Everything the user can get wrong (options, data that does not fit, an unsupported or
already-QAT model) is checked before training, and the model and its manifest are written
together or not at all.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.artifacts import save_keras_artifact
from edgeprune.data import Dataset, check_fits, load_dataset
from edgeprune.errors import UserError
from edgeprune.files import check_input_path, check_output_path
from edgeprune.keras_stats import model_stats
from edgeprune.models import load_keras_model
from edgeprune.prune.task_training import quiet_scores, training_task
from edgeprune.quantize.options import QatOptions
from edgeprune.quantize.qat import QatPlan, wrap
from edgeprune.quantize.training import qat_fit
from edgeprune.tasks.base import Task


@dataclass
class QatReport:
    """What `qat` did: the layers it quantized, the sparsity kept, the scores before and after."""

    source: str
    output: str
    options: dict[str, Any]
    plan: dict[str, Any]
    sparsity: dict[str, Any]
    accuracy: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def qat_model(
    model: Any,
    dataset: Dataset,
    *,
    options: QatOptions | None = None,
    source: str | os.PathLike[str] | None = None,
    **keywords: Any,
) -> tuple[Any, QatReport]:
    """A new QAT model of `model` fine-tuned on `dataset`, and its report (`model` untouched)."""
    chosen = QatOptions.from_parts(options, keywords)
    task = check_data(model, dataset, chosen)
    qat, plan = wrap(model, preserve_sparsity=chosen.preserve_sparsity)
    before = quiet_scores(task, model, dataset)
    trained = qat_fit(qat, model, task, dataset, chosen, source)
    after = quiet_scores(task, qat, dataset)
    report = QatReport(
        source=str(source) if source is not None else getattr(model, "name", "model"),
        output="",
        options=chosen.to_dict(),
        plan=plan.to_dict(),
        sparsity=_sparsity(model, qat, plan),
        accuracy=_accuracy(task, dataset, before, after, chosen.epochs),
        training=trained,
    )
    return qat, report


def qat_file(
    model_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    options: QatOptions | None = None,
    **keywords: Any,
) -> tuple[Path, QatReport]:
    """QAT of `model_path` into `output` (.keras) plus `output.json`; returns both."""
    chosen = QatOptions.from_parts(options, keywords)
    source = check_input_path(model_path)
    target = check_output_path(output, (".keras",), "output model")
    if target.resolve() == source.resolve():
        raise UserError(f"output {str(output)!r} is the input model; choose another file name")
    if chosen.data is None:
        raise UserError("qat trains the model: give data DATASET", params=("data",))
    model = load_keras_model(source, custom_objects=chosen.custom_objects)
    dataset = _load_data(chosen.data, model)
    qat, report = qat_model(model, dataset, options=chosen, source=source)
    report.output = str(target)
    save_keras_artifact(
        qat,
        target,
        step="qat",
        options=chosen.to_dict(),
        source=source,
        sparsity=report.sparsity,
        quantization="qat-int8",
        accuracy=report.accuracy,
        extra={"qat": {"plan": report.plan, "training": report.training}},
    )
    return target, report


def check_data(model: Any, dataset: Dataset, options: QatOptions) -> Task:
    """The task, after checking the data fits the model (one input, shape, labels)."""
    if len(model.inputs) != 1:
        raise UserError(
            f"qat needs a model with one input; {model.name!r} has {len(model.inputs)}",
            params=("model",),
        )
    check_fits(dataset, tuple(model.inputs[0].shape), repr(model.name))
    if len(dataset.x_train) == 0:
        raise UserError(f"dataset {dataset.name!r} has no training samples", params=("data",))
    return training_task(model, dataset, options, model_name=model.name)


def _load_data(spec: str, model: Any) -> Dataset:
    shape = tuple(model.inputs[0].shape) if len(model.inputs) == 1 else ()
    size = (shape[1], shape[2]) if len(shape) == 4 and None not in shape[1:3] else None
    return load_dataset(spec, image_size=size)


def _sparsity(model: Any, qat: Any, plan: QatPlan) -> dict[str, Any]:
    """Kernel zeros before QAT and after (per layer: the folded kernels keep the zeros)."""
    before = model_stats(model)
    after = model_stats(qat)
    layers = {s.name: s.kernel_sparsity for s in after.layers if s.kernel_size}
    return {
        "overall": after.kernel_sparsity,
        "layers": layers,
        "before": {"overall": before.kernel_sparsity, "layers": plan.sparsity},
        "kept": bool(
            all(layers.get(name, 0.0) >= value - 1e-9 for name, value in plan.sparsity.items())
        ),
    }


def _accuracy(
    task: Task, dataset: Dataset, before: dict[str, float], after: dict[str, float], epochs: int
) -> dict[str, Any]:
    primary = task.primary
    record: dict[str, Any] = {
        "dataset": dataset.name,
        **task.primary_record(),
        "value": after.get(primary.name),
        "value_before_qat": before.get(primary.name),
        "metrics": after,
        "metrics_before_qat": before,
        "epochs": epochs,
    }
    if "top1" in after:
        record["top1"] = after["top1"]
        record["top1_before_qat"] = before.get("top1")
    return {k: (float(v) if isinstance(v, np.floating) else v) for k, v in record.items()}
