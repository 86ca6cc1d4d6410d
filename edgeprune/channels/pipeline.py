"""File to file: load a Keras model, prune its channels, optionally fine-tune, save with a manifest.

Everything the user can get wrong is checked before the slow work starts, and the model and
its manifest are written together or not at all.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edgeprune.channels.finetune import check_data_fits, finetune, top1
from edgeprune.channels.prune import check_options, prune_channels
from edgeprune.channels.report import ChannelReport
from edgeprune.errors import UserError
from edgeprune.files import check_input_path, check_output_path
from edgeprune.manifest import build_manifest, manifest_path, write_manifest
from edgeprune.models import load_keras_model, save_keras_model

DEFAULT_EPOCHS = 3
RECOVERY_NOTE = (
    "accuracy needs recovery: the model was saved as pruned; fine-tune it "
    "(--data DATASET --epochs N) before use"
)


def prune_channels_file(
    model_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    ratio: float | None = None,
    threshold: float | None = None,
    criterion: str = "l1",
    normalizer: str = "max",
    granularity: int = 8,
    min_filters: int = 16,
    exclude: Iterable[str] = (),
    equalization: str = "union",
    data: str | None = None,
    epochs: int | None = None,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
) -> tuple[Path, ChannelReport]:
    """Prune `model_path` into `output` (.keras or .h5) plus `output.json`; returns both."""
    source = check_input_path(model_path)
    target = check_output_path(output, (".keras", ".h5"), "output model")
    if target.resolve() == source.resolve():
        raise UserError(f"output {str(output)!r} is the input model; choose another file name")
    options = check_options(
        ratio=ratio,
        threshold=threshold,
        criterion=criterion,
        normalizer=normalizer,
        granularity=granularity,
        min_filters=min_filters,
        exclude=exclude,
        equalization=equalization,
    )
    if epochs is not None and data is None:
        raise UserError("--epochs needs --data DATASET to fine-tune on")
    if data is not None:
        epochs = DEFAULT_EPOCHS if epochs is None else epochs
        if epochs < 1:
            raise UserError(f"--epochs must be >= 1, got {epochs}")
        if batch_size < 1:
            raise UserError(f"--batch-size must be >= 1, got {batch_size}")
        if not learning_rate > 0:
            raise UserError(f"--learning-rate must be a positive number, got {learning_rate}")

    model = load_keras_model(source)
    dataset = _load_data(data, model) if data is not None else None
    pruned, report = prune_channels(model, **options)
    if dataset is not None:
        before = top1(model, dataset)
        pruned_top1 = top1(pruned, dataset)
        result = finetune(
            pruned,
            dataset,
            epochs=epochs or DEFAULT_EPOCHS,
            batch_size=batch_size,
            learning_rate=learning_rate,
        )
        report.accuracy = {
            "dataset": dataset.name,
            "top1": result["top1"],
            "top1_before_pruning": before,
            "top1_after_pruning": pruned_top1,
            "epochs": epochs,
        }
    else:
        report.notes.append(RECOVERY_NOTE)
    report.options.update(
        {"data": data, "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate}
        if data is not None
        else {"data": None}
    )
    _save_with_manifest(pruned, target, source, report)
    return target, report


def _load_data(spec: str, model: Any) -> Any:
    from edgeprune.data import load_dataset

    shape = tuple(model.inputs[0].shape) if len(model.inputs) == 1 else ()
    size = (shape[1], shape[2]) if len(shape) == 4 and None not in shape[1:3] else None
    dataset = load_dataset(spec, image_size=size)
    check_data_fits(model, dataset)
    return dataset


def _save_with_manifest(model: Any, target: Path, source: Path, report: ChannelReport) -> None:
    save_keras_model(model, target)
    try:
        manifest = build_manifest(
            target,
            step="channels",
            options=report.options,
            source=source,
            accuracy=report.accuracy,
            extra={"channels": report.to_dict()},
        )
        write_manifest(target, manifest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        with contextlib.suppress(FileNotFoundError):
            manifest_path(target).unlink()
        raise
