"""Prune a model file into a new model file with its manifest: what `edgeprune prune` runs.

All-or-nothing: every option, the output path, the model, the dataset and the layer
selection are checked before any work, and the model and its manifest are written together
(the model is removed again when its manifest cannot be written).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeprune.data import load_dataset
from edgeprune.errors import UserError
from edgeprune.files import check_output_path
from edgeprune.manifest import build_manifest, manifest_path, write_manifest
from edgeprune.models import load_keras_model, save_keras_model
from edgeprune.prune.gradual import GradualPruneResult, prune_gradually
from edgeprune.prune.oneshot import prune_with_options
from edgeprune.prune.options import DEFAULT_MAX_LAYER_SPARSITY, PruneOptions
from edgeprune.prune.report import PruneReport
from edgeprune.prune.schedules import SCHEDULES
from edgeprune.prune.selection import DEFAULT_MIN_PARAMS

OUTPUT_SUFFIXES = (".keras", ".h5")


@dataclass
class TrainingOptions:
    """Gradual-pruning options; None means "the default" (see `prune_gradually`)."""

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

    def given(self) -> dict[str, Any]:
        """The options the user set, by CLI name, without `data`."""
        return {
            "--" + name.replace("_", "-"): value
            for name, value in self.__dict__.items()
            if name != "data" and value is not None
        }

    def check(self) -> None:
        if self.data is None:
            if self.given():
                names = ", ".join(self.given())
                raise UserError(
                    f"{names}: only for gradual pruning, which needs --data DATASET; "
                    "add --data or leave them out for one-shot pruning"
                )
            return
        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise UserError(f"--schedule {self.schedule!r} is not one of {', '.join(SCHEDULES)}")
        if self.schedule == "constant":
            extra = [
                name
                for name in ("--initial-sparsity", "--power")
                if self.given().get(name) is not None
            ]
            if extra:
                raise UserError(
                    f"{', '.join(extra)} shape the polynomial schedule only; "
                    "drop them or use --schedule polynomial"
                )
        if self.end_step is not None and self.end_step <= (
            self.begin_step if self.begin_step is not None else 0
        ):
            raise UserError(
                f"--end-step {self.end_step} must be greater than --begin-step "
                f"{self.begin_step or 0}"
            )

    def keywords(self) -> dict[str, Any]:
        """Keyword arguments for `prune_gradually` (defaults left to it)."""
        return {k: v for k, v in self.__dict__.items() if k != "data" and v is not None}


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
        if self.gradual is None or self.gradual.accuracy is None:
            return None
        return {
            "top1": self.gradual.accuracy,
            "dense_top1": self.gradual.dense_accuracy,
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
    sparsity: float | None,
    *,
    scope: str = "local",
    max_layer_sparsity: float | None = None,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    min_params: int = DEFAULT_MIN_PARAMS,
    pattern: str | None = None,
    policy: str = "all",
    training: TrainingOptions | None = None,
) -> PruneRun:
    """Load `source`, prune it (one-shot, or gradual when `training.data` is set), write `output`.

    `max_layer_sparsity` applies to scope 'balanced' only; giving it with another scope is
    an error rather than a silently ignored option.
    """
    training = training or TrainingOptions()
    if max_layer_sparsity is not None and scope != "balanced":
        raise UserError(
            f"--max-layer-sparsity applies to --scope balanced only (scope is {scope!r})"
        )
    options = PruneOptions.create(
        sparsity,
        scope=scope,
        max_layer_sparsity=DEFAULT_MAX_LAYER_SPARSITY
        if max_layer_sparsity is None
        else max_layer_sparsity,
        include=include,
        exclude=exclude,
        min_params=min_params,
        pattern=pattern,
        policy=policy,
    )
    training.check()
    target = check_output_path(output, OUTPUT_SUFFIXES, "output model")
    source_path = Path(source)
    model = load_keras_model(source_path)
    run_options: dict[str, Any] = {**options.to_dict(), "mode": "one-shot"}
    gradual = None
    dataset = None
    if training.data is None:
        report = prune_with_options(model, options)
    else:
        dataset = load_dataset(training.data, image_size=_image_size(model))
        gradual = prune_gradually(
            model,
            dataset,
            options.sparsity,
            scope=options.scope,
            max_layer_sparsity=options.max_layer_sparsity,
            include=options.include,
            exclude=options.exclude,
            min_params=options.min_params,
            pattern=options.pattern,
            policy=options.policy,
            **training.keywords(),
        )
        report = gradual.report
        run_options.update(
            mode="gradual",
            data=training.data,
            schedule=gradual.schedule.get_config(),
            epochs=gradual.epochs,
            batch_size=gradual.batch_size,
            learning_rate=gradual.learning_rate,
        )
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
    save_keras_model(model, target)
    try:
        manifest = build_manifest(
            target,
            step="prune",
            options=run_options,
            source=source_path,
            sparsity=report.manifest_sparsity(),
            accuracy=run.accuracy,
        )
        run.manifest = write_manifest(target, manifest)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return run


def _image_size(model: Any) -> tuple[int, int] | None:
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, tuple) and len(shape) == 4 and shape[1] and shape[2]:
        return int(shape[1]), int(shape[2])
    return None
