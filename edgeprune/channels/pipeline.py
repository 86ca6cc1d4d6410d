"""File to file: load a Keras model, prune its channels, optionally fine-tune, save with a manifest.

Everything the user can get wrong is checked before the slow work starts, and the model and
its manifest are written together or not at all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgeprune.artifacts import save_keras_artifact
from edgeprune.channels.finetune import accuracy_record, check_data_fits, finetune
from edgeprune.channels.options import ChannelOptions
from edgeprune.channels.prune import prune_channels
from edgeprune.channels.report import ChannelReport
from edgeprune.errors import UserError
from edgeprune.files import check_input_path, check_output_path
from edgeprune.models import load_keras_model
from edgeprune.prune.task_training import quiet_scores

RECOVERY_NOTE = (
    "accuracy needs recovery: the model was saved as pruned; fine-tune it "
    "(--data DATASET --epochs N) before use"
)


def prune_channels_file(
    model_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    options: ChannelOptions | None = None,
    **keywords: Any,
) -> tuple[Path, ChannelReport]:
    """Prune `model_path` into `output` (.keras or .h5) plus `output.json`; returns both.

    Give `options` or the `ChannelOptions` fields as keywords; with `data` the pruned
    model is fine-tuned on it before it is saved.
    """
    source = check_input_path(model_path)
    target = check_output_path(output, (".keras", ".h5"), "output model")
    if target.resolve() == source.resolve():
        raise UserError(f"output {str(output)!r} is the input model; choose another file name")
    chosen = ChannelOptions.from_parts(options, keywords)

    model = load_keras_model(source, custom_objects=chosen.custom_objects)
    dataset, task = None, None
    if chosen.data is not None:
        dataset, task = load_task_data(chosen.data, model, chosen)
    pruned, report = prune_channels(model, options=chosen)
    if dataset is not None and task is not None:
        before = quiet_scores(task, model, dataset)
        pruned_scores = quiet_scores(task, pruned, dataset)
        result = finetune(
            pruned, dataset, **chosen.finetune_keywords(), task=task, source=source, teacher=model
        )
        report.accuracy = accuracy_record(
            task, dataset, before, pruned_scores, result, chosen.epochs
        )
        report.options.update(
            {
                name: getattr(chosen, name)
                for name in (
                    "data",
                    "epochs",
                    "batch_size",
                    "learning_rate",
                    "learning_rate_decay",
                    "task",
                    "loss",
                )
            }
        )
        if chosen.distill:
            report.options["distillation"] = result["distillation"]
    else:
        report.notes.append(RECOVERY_NOTE)
        report.options.update({"data": None})
    save_keras_artifact(
        pruned,
        target,
        step="channels",
        options=report.options,
        source=source,
        accuracy=report.accuracy,
        extra={"channels": report.to_dict()},
    )
    return target, report


def load_fitting_data(spec: str, model: Any, fields: Any = None) -> Any:
    """The dataset `spec`, sized for `model`'s input, checked to fit it (else a UserError)."""
    return load_task_data(spec, model, fields)[0]


def load_task_data(spec: str, model: Any, fields: Any = None) -> tuple[Any, Any]:
    """The dataset `spec` checked to fit `model`, and the model's task (named or inferred)."""
    from edgeprune.data import load_dataset

    shape = tuple(model.inputs[0].shape) if len(model.inputs) == 1 else ()
    size = (shape[1], shape[2]) if len(shape) == 4 and None not in shape[1:3] else None
    dataset = load_dataset(spec, image_size=size)
    return dataset, check_data_fits(model, dataset, fields)
