"""QAT's fine-tune: the wrapped model trained with its task's loss (or distilled from the
float model), reusing the training stages' loss and scoring (`prune.task_training`)."""

from __future__ import annotations

import os
from typing import Any

from edgeprune.data import Dataset
from edgeprune.prune.task_training import Training, fit_for_task, resolve_loss
from edgeprune.quantize.options import QatOptions
from edgeprune.tasks.base import Task
from edgeprune.tasks.distill import Distillation


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

    chosen = resolve_loss(teacher, task, options.loss, source)
    distillation = Distillation.from_fields(options)
    training = Training(
        "qat", options.epochs, options.batch_size, options.learning_rate, options.seed
    )
    history = fit_for_task(
        qat_model, task, dataset, chosen, training, distillation=distillation, teacher=teacher
    )
    for layer in qat_model.layers:
        if isinstance(layer, QatKernel) and layer.preserve_sparsity:
            layer.apply_mask()
    return {
        "loss": float(history.history["loss"][-1]),
        "training_loss": chosen.to_dict(),
        "distill": distillation.to_dict() if distillation is not None else None,
    }
