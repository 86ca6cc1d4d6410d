"""Distillation: the model before a training step teaches the model the step trains.

Every training stage (gradual pruning, channel fine-tuning, QAT, adapt's long fine-tune)
asks `distilled_fit` for the loss to compile with and the targets to fit on; the teacher's
outputs are computed once on the training inputs and travel beside the labels, so no
custom train step is needed and any Keras backend fits it.

Per output the target is `[labels, teacher outputs]` along the last axis (class ids get a
last axis of one first); `distillation_loss` splits it again and returns
`(1 - alpha) * task loss + alpha * term`, where the term is, for class scores (a
classifier, or a segmenter's per-pixel scores), Hinton et al.'s
`T² · KL(softmax(teacher / T) ‖ softmax(student / T))` — from log-probabilities when the
model already applies softmax — and for anything else the mean squared difference of the
outputs. The loss is for training only: callers compile the model again with the plain
task loss (`plain_compile`) before it is saved, so no saved model names an edgeprune class.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeprune import _tf
from edgeprune.errors import UserError
from edgeprune.tasks.base import Task
from edgeprune.tasks.outputs import activation_name, keras_outputs, output_layer

SOFT_LOGITS = "logits"
"""Class scores before softmax: the term is KL of the softened distributions."""
SOFT_PROBABILITIES = "probabilities"
"""Softmax already applied: log-probabilities are the logits (up to a constant per row)."""
BINARY_LOGITS = "binary_logits"
BINARY_PROBABILITIES = "binary_probabilities"
MATCH = "match"
"""Anything else (regression, detection heads, custom): mean squared output matching."""

_EPSILON = 1e-7
_TINY = 1e-37
"""Where stored probabilities are clipped before their log: float32's own floor, so a
confident teacher's small probabilities keep their order (at 1e-7 they would all flatten
to one value and, softened by T, put a uniform mass on the wrong classes)."""
_SCORE_TASKS = ("classification", "segmentation")


@dataclass(frozen=True)
class Distillation:
    """How strongly, and how softly, the teacher's outputs weigh in."""

    temperature: float
    alpha: float

    @classmethod
    def from_fields(cls, fields: Any) -> Distillation | None:
        """The distillation a stage's options ask for (`DistillFields`), or None."""
        if not getattr(fields, "distill", False):
            return None
        return cls(float(fields.temperature), float(fields.alpha))

    def to_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "alpha": self.alpha}


def distilled_fit(
    teacher: Any,
    task: Task,
    loss: Any,
    x_train: np.ndarray,
    labels: Any,
    distillation: Distillation,
    *,
    batch_size: int = 256,
) -> tuple[Any, Any]:
    """(loss, targets) to give `compile` and `fit` in place of (`loss`, `labels`).

    `teacher` is a Keras model with the student's outputs; `loss` the task loss (one, a list
    or a dict per output, as compile takes it); `labels` the fit labels (`fit_labels`).
    After `fit`, compile the student again with `loss` (`plain_compile`) before saving it.
    """
    infos = keras_outputs(teacher, x_train)
    names = [info.name for info in infos]
    outputs = _teacher_outputs(teacher, x_train, names, batch_size)
    kinds = [output_kind(teacher, task, i, out) for i, out in enumerate(outputs)]
    if len(outputs) == 1:
        single = labels
        if isinstance(labels, Mapping):
            if len(labels) != 1:
                raise UserError(
                    f"the model has one output but the labels name {len(labels)}; "
                    "distill needs one label array per output",
                    params=("distill",),
                )
            single = next(iter(labels.values()))
        only = _one_loss(loss, 0, names[0])
        packed, width, dtype = pack(single, outputs[0])
        return distillation_loss(only, kinds[0], width, dtype, distillation), packed
    if not isinstance(labels, Mapping):
        raise UserError(
            f"the model has {len(outputs)} outputs; distill needs labels per output "
            f"(y_<output> for {', '.join(names)})",
            params=("distill", "data"),
        )
    losses: dict[str, Any] = {}
    targets: dict[str, np.ndarray] = {}
    for index, name in enumerate(names):
        if name not in labels:
            raise UserError(
                f"the dataset has no labels y_{name} for output {name!r}; distill needs "
                "labels for every output",
                params=("data",),
            )
        packed, width, dtype = pack(labels[name], outputs[index])
        targets[name] = packed
        losses[name] = distillation_loss(
            _one_loss(loss, index, name), kinds[index], width, dtype, distillation
        )
    return losses, targets


def plain_compile(model: Any, loss: Any, optimizer: Any = None) -> None:
    """Compile `model` again with the plain task loss, so the saved file names no edgeprune
    loss (it loads with stock Keras); the fit's optimizer (and its state) is kept."""
    keras = _tf.keras()
    chosen = optimizer or getattr(model, "optimizer", None) or keras.optimizers.Adam()
    model.compile(optimizer=chosen, loss=loss)


def pack(labels: Any, teacher_output: np.ndarray) -> tuple[np.ndarray, int, str]:
    """`[labels, teacher output]` along the last axis, the labels' width and their dtype.

    Labels one rank below the output (class ids [N] for [N, C], masks [N, H, W] for
    [N, H, W, C]) get a last axis of one, which the loss takes off again.
    """
    array = np.asarray(labels)
    teacher_output = np.asarray(teacher_output, dtype=np.float32)
    if array.dtype == object or array.ndim == 0:
        raise UserError(
            "distill needs array labels (class ids, values or masks) beside the teacher's outputs",
            params=("distill",),
        )
    if len(array) != len(teacher_output):
        raise UserError(
            f"distill: {len(array)} labels for {len(teacher_output)} training samples",
            params=("data",),
        )
    dtype = "int" if np.issubdtype(array.dtype, np.integer) or array.dtype == bool else "float"
    width = 0  # 0: the labels had no last axis of their own (it is added here)
    if array.ndim == teacher_output.ndim - 1:
        array = array[..., None]
    elif array.ndim == teacher_output.ndim:
        width = int(array.shape[-1])
    else:
        raise UserError(
            f"distill: labels of shape {array.shape[1:]} per sample cannot travel beside "
            f"outputs of shape {teacher_output.shape[1:]}",
            params=("distill",),
        )
    if array.shape[:-1] != teacher_output.shape[:-1]:
        raise UserError(
            f"distill: labels of shape {array.shape[1:]} per sample do not match outputs of "
            f"shape {teacher_output.shape[1:]}",
            params=("distill",),
        )
    packed = np.concatenate([array.astype(np.float32), teacher_output], axis=-1)
    return packed, width, dtype


def output_kind(model: Any, task: Task, index: int, sample: np.ndarray | None = None) -> str:
    """How output `index` is distilled: softened class scores (logits or probabilities,
    per class or one binary unit) for classifiers and segmenters, else output matching."""
    if task.name not in _SCORE_TASKS:
        return MATCH
    layer = output_layer(model, index)
    if layer is not None:
        name = activation_name(layer)
    elif sample is not None:  # a subclassed model: probabilities are rows summing to 1
        values = np.asarray(sample[:8])
        units = values.shape[-1]
        ones = np.allclose(values.sum(axis=-1), 1.0, atol=1e-3) if units > 1 else False
        in_unit = bool(np.all(values >= 0) and np.all(values <= 1))
        name = "softmax" if ones and in_unit else "sigmoid" if units == 1 and in_unit else "linear"
    else:
        name = "linear"
    units = int(np.asarray(sample).shape[-1]) if sample is not None else 2
    if units == 1:
        if name == "sigmoid":
            return BINARY_PROBABILITIES
        return BINARY_LOGITS if name == "linear" else MATCH
    if name == "softmax":
        return SOFT_PROBABILITIES
    return SOFT_LOGITS if name == "linear" else MATCH


def _teacher_outputs(
    teacher: Any, x: np.ndarray, names: Sequence[str], batch_size: int
) -> list[np.ndarray]:
    with _tf.quiet_native_output():
        out = teacher.predict(x, batch_size=batch_size, verbose=0)
    if isinstance(out, Mapping):
        if set(names) <= set(out):
            return [np.asarray(out[n]) for n in names]
        return [np.asarray(v) for v in out.values()]
    if isinstance(out, list | tuple):
        return [np.asarray(o) for o in out]
    return [np.asarray(out)]


def _one_loss(loss: Any, index: int, name: str) -> Any:
    """The task loss of output `index` (`name`) from what `compile` would take."""
    if isinstance(loss, Mapping):
        if name not in loss:
            raise UserError(
                f"the loss names outputs {', '.join(map(str, loss))} but not {name!r}",
                params=("loss",),
            )
        return loss[name]
    if isinstance(loss, list | tuple):
        return loss[index]
    return loss


def distillation_loss(
    task_loss: Any, kind: str, width: int, dtype: str, distillation: Distillation
) -> Any:
    """A keras.losses.Loss: `(1 - alpha) * task_loss + alpha * distill_term` on packed targets."""
    return _loss_class()(task_loss, kind, width, dtype, distillation)


@functools.cache
def _loss_class() -> type:
    """Built on first use, so importing this module does not import TensorFlow."""
    keras = _tf.keras()
    ops = keras.ops

    class DistillationLoss(keras.losses.Loss):  # type: ignore[misc,name-defined]
        """`(1 - alpha) * task loss + alpha * distillation term`, per sample; the targets are
        `[labels, teacher outputs]` along the last axis (`pack`)."""

        def __init__(
            self, task_loss: Any, kind: str, width: int, dtype: str, distillation: Distillation
        ) -> None:
            super().__init__(name="distillation")
            self.task_loss = (
                keras.losses.get(task_loss) if isinstance(task_loss, str) else task_loss
            )
            self.kind = kind
            self.width = width
            self.label_dtype = dtype
            self.temperature = float(distillation.temperature)
            self.alpha = float(distillation.alpha)

        def call(self, y_true: Any, y_pred: Any) -> Any:
            split = max(self.width, 1)
            labels = y_true[..., :split]
            teacher = y_true[..., split:]
            if self.width == 0:
                labels = ops.squeeze(labels, axis=-1)
            if self.label_dtype == "int":
                labels = ops.cast(ops.round(labels), "int32")
            task = _per_sample(self._task(labels, y_pred))
            soft = _per_sample(distill_term(teacher, y_pred, self.kind, self.temperature))
            return (1.0 - self.alpha) * task + self.alpha * soft

        def _task(self, labels: Any, y_pred: Any) -> Any:
            loss = self.task_loss
            if isinstance(loss, keras.losses.Loss):
                return loss.call(labels, y_pred)
            return loss(labels, y_pred)

        def get_config(self) -> dict[str, Any]:
            return {
                "kind": self.kind,
                "width": self.width,
                "temperature": self.temperature,
                "alpha": self.alpha,
            }

    def _per_sample(values: Any) -> Any:
        values = ops.convert_to_tensor(values)
        if len(values.shape) > 1:
            return ops.mean(ops.reshape(values, (ops.shape(values)[0], -1)), axis=-1)
        return values

    return DistillationLoss


def distill_term(teacher: Any, student: Any, kind: str, temperature: float) -> Any:
    """The distillation term per sample (per pixel for segmenters), in Keras ops.

    Class scores: `T² · KL(softmax(teacher/T) ‖ softmax(student/T))` over the last axis
    (probabilities enter as log-probabilities); one binary unit: the same with sigmoid;
    anything else: the squared difference averaged over the last axis.
    """
    ops = _tf.keras().ops
    t = float(temperature)
    teacher = ops.cast(teacher, student.dtype)
    if kind in (SOFT_LOGITS, SOFT_PROBABILITIES):
        if kind == SOFT_PROBABILITIES:
            teacher = ops.log(ops.clip(teacher, _TINY, 1.0))
            student = _log_probabilities(student)
        log_p_teacher = ops.log_softmax(teacher / t, axis=-1)
        log_p_student = ops.log_softmax(student / t, axis=-1)
        kl = ops.sum(ops.exp(log_p_teacher) * (log_p_teacher - log_p_student), axis=-1)
        return kl * (t * t)
    if kind in (BINARY_LOGITS, BINARY_PROBABILITIES):
        if kind == BINARY_PROBABILITIES:
            teacher = _logit(teacher)
            student = _logit(student)
        pair_t = ops.concatenate([teacher / t, ops.zeros_like(teacher)], axis=-1)
        pair_s = ops.concatenate([student / t, ops.zeros_like(student)], axis=-1)
        log_p_teacher = ops.log_softmax(pair_t, axis=-1)
        log_p_student = ops.log_softmax(pair_s, axis=-1)
        kl = ops.sum(ops.exp(log_p_teacher) * (log_p_teacher - log_p_student), axis=-1)
        return kl * (t * t)
    return ops.mean(ops.square(student - teacher), axis=-1)


def _log_probabilities(p: Any) -> Any:
    """log p of a softmax output: from the logits Keras keeps on it when it has them (what
    its own cross-entropy does, exact and with gradients for tiny p), else log of p."""
    ops = _tf.keras().ops
    logits = getattr(p, "_keras_logits", None)
    if logits is None:
        op = getattr(p, "op", None)
        if op is not None and getattr(op, "type", None) == "Softmax" and len(op.inputs) == 1:
            logits = op.inputs[0]
    if logits is not None:
        return ops.log_softmax(logits, axis=-1)
    return ops.log(ops.clip(p, _TINY, 1.0))


def _logit(p: Any) -> Any:
    ops = _tf.keras().ops
    p = ops.clip(p, _EPSILON, 1.0 - _EPSILON)
    return ops.log(p) - ops.log(1.0 - p)


def teacher_copy(model: Any) -> Any:
    """A frozen copy of `model` as it is now (the teacher), with its own weights, so the
    step may change the model in place; subclassed models are copied by a save/load."""
    import tempfile
    from pathlib import Path

    keras = _tf.keras()
    try:
        copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
    except Exception:  # subclassed or custom models: a save/load round trip copies them
        with tempfile.TemporaryDirectory(prefix="edgeprune-teacher-") as folder:
            path = Path(folder) / "teacher.keras"
            model.save(path)
            copy = keras.models.load_model(path, compile=False)
    copy.trainable = False
    return copy
