"""Model in, new model out: `prune`, `prune_channels`, `qat`, `xnnpack_fix`.

The model passed in is never changed: a Keras model object is copied with its weights
first, a path is loaded fresh. Options are the fields of the stage's options class (`ep.PruneOptions`,
`ep.ChannelOptions`), validated there.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from edgeprune.api._params import take, with_options
from edgeprune.api.results import ChannelResult, FixResult, PruneResult, QatResult
from edgeprune.errors import UserError

ModelLike = Any
"""A Keras model object, or the path of a `.keras` / `.h5` file."""

DataLike = Any
"""What the CLI's `--data` takes: `"digits"`, an `.npz` path, an image folder (or a Dataset)."""


def prune(
    model: ModelLike,
    sparsity: float | None = None,
    *,
    data: DataLike = None,
    options: object = None,
    **given: Any,
) -> PruneResult:
    """Magnitude-prune a copy of `model`; with `data`, fine-tune it while pruning (gradual).

    Keywords are the fields of `ep.PruneOptions` (scope, max_layer_sparsity, include,
    exclude, min_params, pattern, policy and, with `data`, epochs, schedule, batch_size,
    learning_rate, ...); `options` (an `ep.PruneOptions`) gives them all at once, keywords
    winning. `data` is what the CLI's `--data` takes, or a loaded Dataset.
    """
    from edgeprune.prune.gradual import accuracy_record, prune_gradually
    from edgeprune.prune.oneshot import prune_with_options
    from edgeprune.prune.options import PruneOptions

    values = with_options(options, given)
    if sparsity is not None:
        values["sparsity"] = sparsity
    data = take(values, "data", data)
    if data is not None:
        values["data"] = data if isinstance(data, (str, os.PathLike)) else "dataset"
        if isinstance(values["data"], os.PathLike):
            values["data"] = str(values["data"])
    checked = PruneOptions.create(**values)
    copy = _copy_model(model, checked.custom_objects)
    if data is None:
        report = prune_with_options(copy, checked)
        return PruneResult(copy, report, {**checked.selection_dict(), "mode": "one-shot"})
    dataset = _dataset(data, copy)
    _keep_compiled_loss(model, copy)
    result = prune_gradually(
        copy, dataset, options=checked.model_copy(update={"data": None}), source=_source(model)
    )
    run_options = {
        **checked.selection_dict(),
        "mode": "gradual",
        "data": _data_name(data, dataset),
        "schedule": result.schedule.get_config(),
        "epochs": result.epochs,
        "batch_size": result.batch_size,
        "learning_rate": result.learning_rate,
        "learning_rate_decay": result.learning_rate_decay,
    }
    if result.distillation is not None:
        run_options["distillation"] = result.distillation.to_dict()
    accuracy = None
    record = accuracy_record(result)
    if record is not None:
        accuracy = {
            **record,
            "dataset": dataset.name,
            "split": "validation",
            "samples": len(dataset.x_val),
            "framework": "keras",
        }
    training = {k: v for k, v in result.to_dict().items() if k != "report"}
    return PruneResult(copy, result.report, run_options, training=training, accuracy=accuracy)


def prune_channels(
    model: ModelLike,
    *,
    data: DataLike = None,
    options: object = None,
    **given: Any,
) -> ChannelResult:
    """Remove whole filters; returns a new, smaller model. With `data`, fine-tune it after.

    Keywords are the fields of `ep.ChannelOptions` (ratio or threshold, criterion,
    normalizer, granularity, min_filters, exclude, equalization, and with `data` epochs,
    batch_size, learning_rate, seed); `options` gives them all at once, keywords winning.
    """
    from edgeprune.channels.finetune import accuracy_record, check_data_fits, finetune
    from edgeprune.channels.options import FINETUNE, SELECTION, ChannelOptions
    from edgeprune.channels.prune import prune_channels as channel_prune
    from edgeprune.prune.task_training import quiet_scores

    values = with_options(options, given)
    data = take(values, "data", data)
    if data is not None:
        values["data"] = str(data) if isinstance(data, (str, os.PathLike)) else "dataset"
    checked = ChannelOptions.create(**values)
    source = _load(model, checked.custom_objects)
    dataset, task = None, None
    if data is not None:
        dataset = _dataset(data, source)
        task = check_data_fits(source, dataset, checked)
    selection = {k: v for k, v in checked.model_dump().items() if k in SELECTION}
    pruned, report = channel_prune(source, **selection)
    if dataset is not None and task is not None:
        tuning = {k: v for k, v in checked.model_dump().items() if k in FINETUNE}
        before, after = quiet_scores(task, source, dataset), quiet_scores(task, pruned, dataset)
        _keep_compiled_loss(source, pruned)
        tuned = finetune(
            pruned, dataset, **tuning, task=task, source=_source(model), teacher=source
        )
        report.accuracy = accuracy_record(task, dataset, before, after, tuned, tuning["epochs"])
    return ChannelResult(pruned, report)


def qat(
    model: ModelLike,
    *,
    data: DataLike = None,
    options: object = None,
    **given: Any,
) -> QatResult:
    """Quantization-aware fine-tune: a new model that simulates TFLite int8 (zeros kept).

    Keywords are the fields of `ep.QatOptions` (epochs, batch_size, learning_rate, seed,
    preserve_sparsity, distill, ...); `data` is what the CLI's `--data` takes, or a Dataset.
    `ep.convert(result.model, "out.tflite", quantize="int8", data=...)` then gives the int8
    model it was trained for.
    """
    from edgeprune.quantize.options import QatOptions
    from edgeprune.quantize.pipeline import qat_model

    values = with_options(options, given)
    data = take(values, "data", data)
    if data is None:
        raise UserError("qat trains the model: give data", params=("data",))
    values["data"] = str(data) if isinstance(data, (str, os.PathLike)) else "dataset"
    checked = QatOptions.create(**values)
    source = _load(model, checked.custom_objects)
    dataset = _dataset(data, source)
    new, report = qat_model(source, dataset, options=checked, source=_source(model))
    return QatResult(new, report)


def xnnpack_fix(model: ModelLike) -> FixResult:
    """A new model whose stride-2 convs pad symmetrically, so XNNPACK's sparse path can take it."""
    from edgeprune.xnnpack.fix import fix_model
    from edgeprune.xnnpack.policy import plan_keras_model

    fixed = fix_model(_load(model))
    plan = plan_keras_model(fixed.model)
    notes = list(fixed.notes)
    if not fixed.rewrites:
        notes.append("nothing needed rewriting: the stride-2 convs already pad symmetrically")
    return FixResult(
        model=fixed.model,
        rewrites=[r.to_dict() for r in fixed.rewrites],
        cluster_ready=bool(plan.formed),
        remaining=[] if plan.formed else [p.text() for p in plan.problems],
        notes=notes,
    )


def _load(model: ModelLike, custom_objects: str | None = None) -> Any:
    """A path loads a Keras model; a model object is used as it is (the verb does not edit it)."""
    if isinstance(model, (str, os.PathLike)):
        from edgeprune.models import load_keras_model

        return load_keras_model(model, custom_objects=custom_objects)
    if not hasattr(model, "layers"):
        raise UserError(
            f"model is a {type(model).__name__}; give a Keras model or the path of a .keras file",
            params=("model",),
        )
    return model


def _source(model: ModelLike) -> str | None:
    """The model's file, where its compiled loss is read from (None: an in-memory model)."""
    return str(model) if isinstance(model, (str, os.PathLike)) else None


def _keep_compiled_loss(model: ModelLike, copy: Any) -> None:
    """An in-memory model's compiled loss carries over to the copy that trains."""
    loss = getattr(model, "loss", None) if getattr(model, "compiled", False) else None
    if loss is not None and copy is not model:
        copy.compile(loss=loss)


def _copy_model(model: ModelLike, custom_objects: str | None = None) -> Any:
    """A model to edit: loaded fresh from a path, else a clone with the same weights."""
    if isinstance(model, (str, os.PathLike)):
        return _load(model, custom_objects)
    source = _load(model)
    from edgeprune import _tf

    keras = _tf.keras()
    try:
        clone = keras.models.clone_model(source)
        clone.set_weights(source.get_weights())
        return clone
    except Exception:  # subclassed or custom models: a save/load round trip copies them
        with tempfile.TemporaryDirectory(prefix="edgeprune-copy-") as folder:
            path = Path(folder) / "model.keras"
            source.save(path)
            return keras.models.load_model(path, compile=False)


def _dataset(data: DataLike, model: Any) -> Any:
    from edgeprune.tflite.evaluation import dataset_for

    shape = getattr(model, "input_shape", ())
    return dataset_for(data, tuple(shape) if isinstance(shape, tuple) else ())


def _data_name(data: DataLike, dataset: Any) -> str:
    return str(data) if isinstance(data, (str, os.PathLike)) else str(dataset.name)
