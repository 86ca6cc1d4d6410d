"""Fine-tune a pruned model with the loss its task calls for.

Pruning removes filters the model was using, so accuracy drops until it is retrained (TAO
and every pruning paper retrain). The loss is `loss` (--loss) if named, else the source
model's compiled loss, else the task's default (cross-entropy for classifiers, MSE for
regression, per-pixel cross-entropy for segmenters); scores are the task's metrics.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from edgeprune import _tf
from edgeprune.data import Dataset, check_fits
from edgeprune.errors import UserError
from edgeprune.prune.rates import CONSTANT, check_decay, optimizer_rate
from edgeprune.prune.task_training import (
    Training,
    TrainingLoss,
    fit_for_task,
    quiet_scores,
    resolve_loss,
    training_task,
)
from edgeprune.tasks.base import Task
from edgeprune.tasks.distill import Distillation
from edgeprune.tasks.options import DEFAULT_ALPHA, DEFAULT_TEMPERATURE

# Layers that sit between the last activation and the output without changing it.
_TRANSPARENT = frozenset({"Flatten", "Reshape", "Dropout", "Identity", "Activation"})


def output_activation(model: Any) -> str:
    """Name of the activation applied last ('softmax', 'sigmoid', 'linear', ...)."""
    if len(model.outputs) != 1:
        raise UserError("fine-tuning needs a model with one output; this one has several")
    operation = model.outputs[0]._keras_history[0]
    for _ in range(100):
        if hasattr(operation, "outputs") and hasattr(operation, "layers"):  # nested model
            operation = operation.outputs[0]._keras_history[0]
            continue
        name = type(operation).__name__
        if name == "Softmax":
            return "softmax"
        activation = getattr(operation, "activation", None)
        activation_name = str(getattr(activation, "__name__", activation or "linear"))
        if name == "Activation" or (activation is not None and activation_name != "linear"):
            return activation_name
        if name not in _TRANSPARENT or not operation._inbound_nodes:
            return "linear"
        operation = operation._inbound_nodes[0].input_tensors[0]._keras_history[0]
    return "linear"


def training_loss(model: Any) -> Any:
    """SparseCategoricalCrossentropy on probabilities or logits, judged from the final activation."""
    keras = _tf.keras()
    activation = output_activation(model)
    if activation == "softmax":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=False)
    if activation == "linear":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    raise UserError(
        f"the model's output ends in {activation!r}; fine-tuning supports class-id labels with a "
        "softmax or linear (logits) output"
    )


def check_data_fits(model: Any, dataset: Dataset, fields: Any = None) -> Task:
    """Sample shape, labels and outputs must fit the model's task, or a UserError says which;
    returns the task (named in `fields.task` or inferred)."""
    if len(model.inputs) != 1:
        raise UserError("fine-tuning needs a model with one input; this one has several")
    check_fits(dataset, tuple(model.inputs[0].shape), model.name)
    return training_task(model, dataset, fields, model_name=model.name)


def finetune(
    model: Any,
    dataset: Dataset,
    *,
    epochs: int,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    learning_rate_decay: str = CONSTANT,
    seed: int = 0,
    tensorboard: str | None = None,
    loss: str | TrainingLoss | None = None,
    task: Task | None = None,
    source: str | os.PathLike[str] | None = None,
    distill: bool = False,
    temperature: float = DEFAULT_TEMPERATURE,
    alpha: float = DEFAULT_ALPHA,
    teacher: Any = None,
) -> dict[str, Any]:
    """Train `model` in place; returns the final training loss, the task's validation
    metrics (`metrics`; `top1` too for classifiers), which loss and learning rate trained
    it and the distillation (None without `distill`).

    `learning_rate_decay`: constant, or cosine from `learning_rate` to 0 by the last step
    (`prune.rates`), which ends the fine-tune on a settled point rather than wherever its
    last large step left it.

    `loss`: a Keras loss name or FILE.py:fn (or a resolved TrainingLoss), else the compiled
    loss of `source` (the unpruned model's file), else the task's default. With `distill`,
    `teacher` (the model before pruning; default the model as it is before this fine-tune)
    teaches at `temperature`, weighted by `alpha` (`edgeprune.tasks.distill`)."""
    if epochs < 1:
        raise UserError(f"epochs must be >= 1, got {epochs}", params=("epochs",))
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {batch_size}", params=("batch_size",))
    if not (learning_rate > 0 and np.isfinite(learning_rate)):
        raise UserError(
            f"learning_rate must be a positive number, got {learning_rate}",
            params=("learning_rate",),
        )
    decay = check_decay(learning_rate_decay)
    checked = check_data_fits(model, dataset)
    task = task or checked
    chosen = loss if isinstance(loss, TrainingLoss) else resolve_loss(model, task, loss, source)
    distillation = Distillation(float(temperature), float(alpha)) if distill else None
    steps = epochs * math.ceil(len(dataset.x_train) / batch_size)
    rate = optimizer_rate(learning_rate, decay, 0, steps)
    training = Training("fine-tune", epochs, batch_size, rate, seed)
    history = fit_for_task(
        model,
        task,
        dataset,
        chosen,
        training,
        distillation=distillation,
        teacher=teacher,
        callbacks=_tensorboard(_tf.keras(), tensorboard),
    )
    metrics = quiet_scores(task, model, dataset)
    result: dict[str, Any] = {
        "loss": float(history.history["loss"][-1]),
        "metrics": metrics,
        "training_loss": chosen.to_dict(),
        "learning_rate": {"initial": float(learning_rate), "decay": decay, "steps": steps},
        "distillation": None if distillation is None else distillation.to_dict(),
    }
    if "top1" in metrics:
        result["top1"] = metrics["top1"]
    return result


def accuracy_record(
    task: Task,
    dataset: Dataset,
    before: dict[str, float],
    pruned: dict[str, float],
    tuned: dict[str, Any],
    epochs: int,
) -> dict[str, Any]:
    """What reports and manifests carry: the task's metric before pruning, after pruning and
    after the fine-tune (`top1*` keys too for classifiers)."""
    primary = task.primary
    after = tuned["metrics"]
    record: dict[str, Any] = {
        "dataset": dataset.name,
        **task.primary_record(),
        "value": after.get(primary.name),
        "value_before_pruning": before.get(primary.name),
        "value_after_pruning": pruned.get(primary.name),
        "metrics": after,
        "metrics_before_pruning": before,
        "metrics_after_pruning": pruned,
        "loss": tuned.get("training_loss"),
        "distillation": tuned.get("distillation"),
        "epochs": epochs,
    }
    if "top1" in after:
        record["top1"] = after["top1"]
        record["top1_before_pruning"] = before.get("top1")
        record["top1_after_pruning"] = pruned.get("top1")
    return record


def _tensorboard(keras: Any, log_dir: str | None) -> list[Any]:
    """Keras' own TensorBoard writer for the fine-tune (loss and metrics per epoch)."""
    if not log_dir:
        return []
    return [keras.callbacks.TensorBoard(log_dir=log_dir, write_graph=False)]


def top1(model: Any, dataset: Dataset, batch_size: int = 256) -> float:
    """Validation top-1 accuracy."""
    with _tf.quiet_native_output():
        scores = model.predict(dataset.x_val, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(scores, axis=-1) == dataset.y_val))
