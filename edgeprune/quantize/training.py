"""QAT's fine-tune: the wrapped model trained with its task's loss (or distilled from the
float model), reusing the training stages' loss and scoring (`prune.task_training`)."""

from __future__ import annotations

import os
from typing import Any

from edgeprune import _tf
from edgeprune.data import Dataset
from edgeprune.progress import keras_callbacks
from edgeprune.prune.task_training import fit_labels, resolve_loss, task_scores
from edgeprune.quantize.options import QatOptions
from edgeprune.tasks.base import Task
from edgeprune.tasks.distill import Distillation, distilled_fit, plain_compile


def qat_fit(
    qat_model: Any,
    teacher: Any,
    task: Task,
    dataset: Dataset,
    options: QatOptions,
    source: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Train `qat_model` in place; returns the final loss, the loss's name and source, and
    the distillation used (None without `options.distill`). `teacher` is the float model,
    whose compiled loss (or `source`'s) is the default and which teaches with `distill`."""
    from edgeprune.qat_layers import QatKernel

    keras = _tf.keras()
    chosen = resolve_loss(teacher, task, options.loss, source)
    loss, targets = chosen.loss, fit_labels(qat_model, dataset.y_train)
    distillation = Distillation.from_fields(options)
    if distillation is not None:
        loss, targets = distilled_fit(teacher, task, loss, dataset.x_train, targets, distillation)
    keras.utils.set_random_seed(options.seed)
    qat_model.compile(optimizer=keras.optimizers.Adam(options.learning_rate), loss=loss)
    with _tf.quiet_native_output():
        history = qat_model.fit(
            dataset.x_train,
            targets,
            epochs=options.epochs,
            batch_size=options.batch_size,
            shuffle=True,
            verbose=0,
            callbacks=keras_callbacks("qat"),
        )
    if distillation is not None:
        plain_compile(qat_model, chosen.loss)  # the saved model names no distillation loss
    for layer in qat_model.layers:
        if isinstance(layer, QatKernel) and layer.preserve_sparsity:
            layer.apply_mask()
    return {
        "loss": float(history.history["loss"][-1]),
        "training_loss": chosen.to_dict(),
        "distill": distillation.to_dict() if distillation is not None else None,
    }


def scores(task: Task, model: Any, dataset: Dataset) -> dict[str, float]:
    """The task's metrics on the validation split, quietly."""
    with _tf.quiet_native_output():
        return task_scores(task, model, dataset)
