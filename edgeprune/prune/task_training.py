"""The loss and the scores of every stage that trains, for any task.

The loss is `--loss` if given (a Keras loss name, or FILE.py:fn imported through
edgeprune.user_code), else the model's own compiled loss (in memory, or the `.keras` file's
compile_config: Keras' built-in losses only, so nothing runs because a file names it), else
`task.default_loss(model)`. Scores are `task.score` on the validation split.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune import _tf
from edgeprune.data import Dataset
from edgeprune.errors import UserError
from edgeprune.progress import keras_callbacks
from edgeprune.tasks.base import OutputInfo, Task
from edgeprune.tasks.distill import Distillation, distilled_fit, plain_compile, teacher_copy
from edgeprune.tasks.outputs import keras_outputs, resolve_task
from edgeprune.text import metric_value
from edgeprune.user_code import load_callable

LOSS_OPTION = "option"
LOSS_COMPILED = "compiled"
LOSS_TASK = "task"


@dataclass(frozen=True)
class TrainingLoss:
    """The loss a training stage compiles with, and where it came from (for reports)."""

    loss: Any
    source: str  # LOSS_OPTION (--loss), LOSS_COMPILED (the model's own) or LOSS_TASK
    name: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source}


def model_outputs(model: Any) -> list[OutputInfo]:
    """The model's outputs in its order, as the task sees them (name and batch-first shape)."""
    return keras_outputs(model)


def training_task(model: Any, dataset: Dataset, fields: Any, model_name: str = "model") -> Task:
    """The run's task (named by `fields.task` or inferred), checked against data and outputs
    before any training."""
    if not dataset.has_labels:
        raise UserError(
            f"dataset {dataset.name!r} has no labels; training needs an .npz with y "
            "(or y_<output> per output)",
            params=("data",),
        )
    return resolve_task(dataset, keras_outputs(model), fields, model_name=model_name)


def resolve_loss(
    model: Any, task: Task, loss: str | None = None, source: str | os.PathLike[str] | None = None
) -> TrainingLoss:
    """`loss` if named, else the model's own compiled loss, else the task's default."""
    if loss:
        return TrainingLoss(named_loss(loss), LOSS_OPTION, str(loss))
    compiled = compiled_loss(model, source)
    if compiled is not None:
        return compiled
    default = task.default_loss(model)
    return TrainingLoss(default, LOSS_TASK, _loss_name(default))


def named_loss(spec: str) -> Any:
    """A Keras loss name (`mse`, `huber`) or the user's `FILE.py:fn` / `pkg.module:fn`."""
    text = str(spec).strip()
    if ":" in text:
        return load_callable(text, "loss")
    keras = _tf.keras()
    try:
        found = keras.losses.get(text)
    except (ValueError, TypeError):
        found = None
    if found is None:
        raise UserError(
            f"`loss` {text!r} is not a Keras loss; give a name such as mse, mae, huber, "
            "sparse_categorical_crossentropy, or FILE.py:fn",
            params=("loss",),
        )
    return found


def compiled_loss(model: Any, source: str | os.PathLike[str] | None = None) -> TrainingLoss | None:
    """The loss the model was compiled with: in memory, else the `.keras` file's compile_config.

    Only Keras' built-in losses (and classes registered by the user's custom-objects module)
    are rebuilt from the file; nothing is imported because a file names it.
    """
    if getattr(model, "compiled", False) and getattr(model, "loss", None) is not None:
        return TrainingLoss(model.loss, LOSS_COMPILED, _loss_name(model.loss))
    config = _compile_config(source)
    if not config or config.get("loss") is None:
        return None
    spec = config["loss"]
    return TrainingLoss(_rebuild_loss(spec, source), LOSS_COMPILED, _spec_name(spec))


def _compile_config(source: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    if source is None:
        return None
    path = Path(source)
    if path.suffix.lower() != ".keras" or not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (KeyError, ValueError, OSError):
        return None
    compile_config = config.get("compile_config") if isinstance(config, dict) else None
    return compile_config if isinstance(compile_config, dict) else None


def _rebuild_loss(spec: Any, source: Any) -> Any:
    keras = _tf.keras()
    if isinstance(spec, list):
        return [_rebuild_loss(s, source) for s in spec]
    if isinstance(spec, dict) and "class_name" not in spec:
        return {str(k): _rebuild_loss(v, source) for k, v in spec.items()}
    if isinstance(spec, str):
        try:
            return keras.losses.get(spec)
        except (ValueError, TypeError):
            pass
    elif isinstance(spec, dict):
        module = str(spec.get("module") or "")
        registered = spec.get("registered_name")
        if (module == "keras" or module.startswith("keras.")) and not registered:
            try:
                return keras.losses.deserialize(spec)
            except (ValueError, TypeError):
                pass
        else:
            found = keras.saving.get_registered_object(str(registered or spec.get("class_name")))
            if found is not None:
                config = spec.get("config") or {}
                built: Any = found
                return built.from_config(config) if isinstance(found, type) else found
    raise UserError(
        f"{str(source)!r} was compiled with the custom loss {_spec_name(spec)!r}, which is not "
        "rebuilt from the file; give `loss` (a Keras loss name or FILE.py:fn) or the "
        "--custom-objects module that registers it",
        params=("loss",),
    )


def _spec_name(spec: Any) -> str:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, list):
        return ", ".join(_spec_name(s) for s in spec)
    if isinstance(spec, dict) and "class_name" not in spec:
        return ", ".join(f"{k}: {_spec_name(v)}" for k, v in spec.items())
    if isinstance(spec, dict):
        return str(spec.get("registered_name") or spec.get("class_name"))
    return str(spec)


def _loss_name(loss: Any) -> str:
    if isinstance(loss, str):
        return loss
    if isinstance(loss, list | tuple):
        return ", ".join(_loss_name(x) for x in loss)
    if isinstance(loss, dict):
        return ", ".join(f"{k}: {_loss_name(v)}" for k, v in loss.items())
    return str(
        getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__
    )


def predict_outputs(model: Any, x: np.ndarray, batch_size: int = 256) -> list[np.ndarray]:
    """The model's outputs on `x`, one array per output in the model's order."""
    out = model.predict(x, batch_size=batch_size, verbose=0)
    if isinstance(out, dict):
        names = [o.name for o in model_outputs(model)]
        return (
            [np.asarray(out[n]) for n in names]
            if set(names) <= set(out)
            else [np.asarray(v) for v in out.values()]
        )
    if isinstance(out, list | tuple):
        return [np.asarray(o) for o in out]
    return [np.asarray(out)]


def task_scores(task: Task, model: Any, dataset: Dataset) -> dict[str, float]:
    """The task's metrics of the model on the validation split."""
    if len(dataset.x_val) == 0:
        return {}
    return {
        k: float(v) for k, v in task.score(dataset, predict_outputs(model, dataset.x_val)).items()
    }


def quiet_scores(task: Task, model: Any, dataset: Dataset) -> dict[str, float]:
    """`task_scores` with TensorFlow's native logs kept off the terminal."""
    with _tf.quiet_native_output():
        return task_scores(task, model, dataset)


@dataclass(frozen=True)
class Training:
    """How a training stage fits: Adam at `learning_rate` (a number, or a Keras learning-rate
    schedule such as gradual pruning's cosine, `prune.rates`), `epochs` over shuffled batches
    of `batch_size`, from `seed`; progress events are named `stage`."""

    stage: str
    epochs: int
    batch_size: int
    learning_rate: Any
    seed: int


def fit_for_task(
    model: Any,
    task: Task,
    dataset: Dataset,
    loss: TrainingLoss,
    training: Training,
    *,
    distillation: Distillation | None = None,
    teacher: Any = None,
    callbacks: Sequence[Any] = (),
) -> Any:
    """Train `model` in place with `loss` (distilled from `teacher` with `distillation`; the teacher defaults to a frozen copy of the model as it
    is now) and return Keras' History. The one loop of gradual pruning, channel fine-tuning
    and QAT, so they train alike; afterwards the model is compiled with the plain loss
    again, so a saved file names no distillation loss."""
    keras = _tf.keras()
    fit_loss, targets = loss.loss, fit_labels(model, dataset.y_train)
    if distillation is not None:
        with _tf.quiet_native_output():
            fit_loss, targets = distilled_fit(
                teacher if teacher is not None else teacher_copy(model),
                task,
                loss.loss,
                dataset.x_train,
                targets,
                distillation,
            )
    keras.utils.set_random_seed(training.seed)
    model.compile(optimizer=keras.optimizers.Adam(training.learning_rate), loss=fit_loss)
    try:
        with _tf.quiet_native_output():
            return model.fit(
                dataset.x_train,
                targets,
                epochs=training.epochs,
                batch_size=training.batch_size,
                shuffle=True,
                verbose=0,
                callbacks=[*callbacks, *keras_callbacks(training.stage)],
            )
    finally:
        if distillation is not None:
            plain_compile(model, loss.loss)


def fit_labels(model: Any, labels: Any) -> Any:
    """Training labels as Keras' fit takes them: one array, or a dict per output name."""
    if isinstance(labels, dict):
        names = [o.name for o in model_outputs(model)]
        if len(names) == 1 and len(labels) == 1:
            return next(iter(labels.values()))
        missing = [n for n in names if n not in labels]
        if missing:
            raise UserError(
                f"the dataset has no labels y_{missing[0]} for output {missing[0]!r}; "
                f"give y_<output> for every output ({', '.join(names)})",
                params=("data",),
            )
        return {n: labels[n] for n in names}
    return labels


def metric_change_text(record: dict[str, Any], before: str, after: str) -> str:
    """ "RMSE 0.1234 dense -> 0.1301 pruned" from an accuracy record (`accuracy_record`)."""
    unit = record.get("unit")
    label = record.get("label") or "top-1"
    value = record.get("value", record.get("top1"))
    dense = record.get("dense_value", record.get("dense_top1"))
    return f"{label} {metric_value(dense, unit)} {before} -> {metric_value(value, unit)} {after}"
