"""Model in, new model out: `prune`, `prune_channels`, `xnnpack_fix`.

The model passed in is never changed: a Keras model object is copied with its weights
first, a path is loaded fresh. Options are the keywords of the library function behind each
verb (`edgeprune.prune.prune_model`, `edgeprune.channels.prune_channels`), validated there.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from edgeprune.api._params import check_known, keywords, take, with_options
from edgeprune.api.results import ChannelResult, FixResult, PruneResult
from edgeprune.errors import UserError

ModelLike = Any
"""A Keras model object, or the path of a `.keras` / `.h5` file."""

DataLike = Any
"""What the CLI's `--data` takes: `"digits"`, an `.npz` path, an image folder (or a Dataset)."""

CHANNEL_EPOCHS = 3
CHANNEL_BATCH_SIZE = 32
CHANNEL_LEARNING_RATE = 1e-3


def prune(
    model: ModelLike,
    sparsity: float | None = None,
    *,
    data: DataLike = None,
    options: object = None,
    **given: Any,
) -> PruneResult:
    """Magnitude-prune a copy of `model`; with `data`, fine-tune it while pruning (gradual).

    Keywords are `prune_model`'s (scope, max_layer_sparsity, include, exclude, min_params,
    pattern, policy) and, with `data`, `prune_gradually`'s (epochs, schedule, batch_size,
    learning_rate, ...); `options` (an `ep.PruneOptions`) gives them all at once.
    """
    from edgeprune.prune.gradual import prune_gradually
    from edgeprune.prune.oneshot import prune_model, prune_with_options
    from edgeprune.prune.options import PruneOptions

    options = with_options(options, given)
    sparsity = take(options, "sparsity", sparsity)
    data = take(options, "data", data)
    if sparsity is None and options.get("pattern") is None:
        raise UserError(
            "no sparsity given; pass one in [0, 0.99], e.g. sparsity=0.8", params=("sparsity",)
        )
    oneshot = keywords(prune_model, skip=("model", "sparsity"))
    gradual = keywords(prune_gradually, skip=("model", "dataset", "sparsity", "evaluate"))
    check_known(options, oneshot | gradual)
    if data is None:  # an options object's training values only matter with data
        options = {k: v for k, v in options.items() if k in oneshot or k in given}
    training_only = sorted(set(options) - oneshot)
    if data is None and training_only:
        raise UserError(
            f"{', '.join(training_only)}: only for gradual pruning, which needs data; "
            "pass data=... (e.g. data='digits') or leave them out",
            params=(*training_only, "data"),
        )
    checked = PruneOptions.create(sparsity, **{k: v for k, v in options.items() if k in oneshot})
    copy = _copy_model(model)
    if data is None:
        report = prune_with_options(copy, checked)
        return PruneResult(copy, report, {**checked.to_dict(), "mode": "one-shot"})
    dataset = _dataset(data, copy)
    result = prune_gradually(copy, dataset, sparsity, **options)
    run_options = {
        **checked.to_dict(),
        "mode": "gradual",
        "data": _data_name(data, dataset),
        "schedule": result.schedule.get_config(),
        "epochs": result.epochs,
        "batch_size": result.batch_size,
        "learning_rate": result.learning_rate,
    }
    accuracy = None
    if result.accuracy is not None:
        accuracy = {
            "top1": result.accuracy,
            "dense_top1": result.dense_accuracy,
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
    epochs: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    options: object = None,
    **given: Any,
) -> ChannelResult:
    """Remove whole filters; returns a new, smaller model. With `data`, fine-tune it after.

    Keywords are `edgeprune.channels.prune_channels`' (ratio or threshold, criterion,
    normalizer, granularity, min_filters, exclude, equalization); `options` (an
    `ep.ChannelOptions`) gives them all at once. Fine-tuning runs `epochs` (default 3).
    """
    from edgeprune.channels.finetune import check_data_fits, finetune, top1
    from edgeprune.channels.prune import prune_channels as channel_prune

    if epochs is not None and data is None and getattr(options, "data", None) is None:
        raise UserError(
            "epochs needs data to fine-tune on; pass data=...", params=("epochs", "data")
        )
    options = with_options(options, given)
    data = take(options, "data", data)
    epochs = take(options, "epochs", epochs)
    batch_size = take(options, "batch_size", batch_size) or CHANNEL_BATCH_SIZE
    learning_rate = take(options, "learning_rate", learning_rate) or CHANNEL_LEARNING_RATE
    check_known(options, keywords(channel_prune, skip=("model",)))
    source = _load(model)
    dataset = None
    if data is not None:
        dataset = _dataset(data, source)
        check_data_fits(source, dataset)
    pruned, report = channel_prune(source, **options)
    if dataset is not None:
        epochs = CHANNEL_EPOCHS if epochs is None else epochs
        before, after = top1(source, dataset), top1(pruned, dataset)
        tuned = finetune(
            pruned, dataset, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate
        )
        report.accuracy = {
            "dataset": dataset.name,
            "top1": tuned["top1"],
            "top1_before_pruning": before,
            "top1_after_pruning": after,
            "epochs": epochs,
        }
    return ChannelResult(pruned, report)


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


def _load(model: ModelLike) -> Any:
    """A path loads a Keras model; a model object is used as it is (the verb does not edit it)."""
    if isinstance(model, (str, os.PathLike)):
        from edgeprune.models import load_keras_model

        return load_keras_model(model)
    if not hasattr(model, "layers"):
        raise UserError(
            f"model is a {type(model).__name__}; give a Keras model or the path of a .keras file",
            params=("model",),
        )
    return model


def _copy_model(model: ModelLike) -> Any:
    """A model to edit: loaded fresh from a path, else a clone with the same weights."""
    if isinstance(model, (str, os.PathLike)):
        return _load(model)
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
