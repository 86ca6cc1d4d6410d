"""Prune a model file into a new model file with its manifest: what `edgeprune prune` runs.

All-or-nothing: every option, the output path, the model, the dataset and the layer
selection are checked before any work, and the model and its manifest are written together
(the model is removed again when its manifest cannot be written).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeprune.artifacts import save_keras_artifact
from edgeprune.data import load_dataset
from edgeprune.errors import UserError
from edgeprune.files import check_output_path
from edgeprune.manifest import manifest_path
from edgeprune.models import load_keras_model
from edgeprune.prune.gradual import GradualPruneResult, accuracy_record, prune_gradually
from edgeprune.prune.oneshot import prune_with_options
from edgeprune.prune.options import PruneOptions
from edgeprune.prune.report import PruneReport

OUTPUT_SUFFIXES = (".keras", ".h5")


@dataclass
class TrainingOptions:
    """Deprecated: pass the gradual options to `prune_model_file` as keywords or in
    `PruneOptions`; this only carries them there (None means "the default")."""

    data: str | None = None
    epochs: int | None = None
    schedule: str | None = None
    begin_step: int | None = None
    end_step: int | None = None
    frequency: int | None = None
    initial_sparsity: float | None = None
    power: float | None = None
    batch_size: int | None = None
    learning_rate: float | None = None

    def __post_init__(self) -> None:
        warnings.warn(
            "TrainingOptions is deprecated; pass data, epochs, ... to prune_model_file as "
            "keywords or in PruneOptions",
            DeprecationWarning,
            stacklevel=3,
        )

    def keywords(self) -> dict[str, Any]:
        """The options that were set, as `PruneOptions` fields."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class PruneRun:
    output: Path
    manifest: Path
    source: Path
    report: PruneReport
    options: dict[str, Any]
    gradual: GradualPruneResult | None = None
    dataset: str | None = None
    validation_samples: int | None = None

    @property
    def accuracy(self) -> dict[str, Any] | None:
        record = None if self.gradual is None else accuracy_record(self.gradual)
        if record is None:
            return None
        return {
            **record,
            "dataset": self.dataset,
            "split": "validation",
            "samples": self.validation_samples,
            "framework": "keras",
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "manifest": str(self.manifest),
            "source": str(self.source),
            "mode": "gradual" if self.gradual else "one-shot",
            "options": self.options,
            "sparsity": self.report.manifest_sparsity(),
            "report": self.report.to_dict(),
            "accuracy": self.accuracy,
            "training": None
            if self.gradual is None
            else {k: v for k, v in self.gradual.to_dict().items() if k != "report"},
        }


def prune_model_file(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    sparsity: float | None = None,
    *,
    options: PruneOptions | None = None,
    training: TrainingOptions | None = None,
    **keywords: Any,
) -> PruneRun:
    """Load `source`, prune it (one-shot, or gradual when `data` is set), write `output`.

    Give `options` or the `PruneOptions` fields as keywords. `max_layer_sparsity` applies
    to scope 'balanced' only; giving it with another scope is an error rather than a
    silently ignored option.
    """
    if training is not None:
        keywords.update(training.keywords())
    options = PruneOptions.from_parts(options, {"sparsity": sparsity, **keywords})
    if "max_layer_sparsity" in options.given and options.scope != "balanced":
        raise UserError(
            f"max_layer_sparsity applies to scope balanced only (got {options.scope!r})",
            params=("max_layer_sparsity", "scope"),
        )
    target = check_output_path(output, OUTPUT_SUFFIXES, "output model")
    source_path = Path(source)
    model = load_keras_model(source_path, custom_objects=options.custom_objects)
    run_options: dict[str, Any] = {**options.selection_dict(), "mode": "one-shot"}
    gradual = None
    dataset = None
    if options.data is None:
        report = prune_with_options(model, options)
    else:
        dataset = load_dataset(options.data, image_size=_image_size(model))
        gradual = prune_gradually(model, dataset, options=options, source=str(source_path))
        report = gradual.report
        run_options.update(
            mode="gradual",
            data=options.data,
            schedule=gradual.schedule.get_config(),
            epochs=gradual.epochs,
            batch_size=gradual.batch_size,
            learning_rate=gradual.learning_rate,
            learning_rate_decay=gradual.learning_rate_decay,
        )
        if gradual.distillation is not None:
            run_options["distillation"] = gradual.distillation.to_dict()
    run = PruneRun(
        output=target,
        manifest=manifest_path(target),
        source=source_path,
        report=report,
        options=run_options,
        gradual=gradual,
        dataset=None if dataset is None else dataset.name,
        validation_samples=None if dataset is None else len(dataset.x_val),
    )
    run.manifest = save_keras_artifact(
        model,
        target,
        step="prune",
        options=run_options,
        source=source_path,
        sparsity=report.manifest_sparsity(),
        accuracy=run.accuracy,
    )
    return run


def _image_size(model: Any) -> tuple[int, int] | None:
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, tuple) and len(shape) == 4 and shape[1] and shape[2]:
        return int(shape[1]), int(shape[2])
    return None
