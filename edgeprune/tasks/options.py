"""The task's options, defined once: stages that score or train a model mix these in.

`TaskFields` (evaluate, prune, channels, adapt, convert's accuracy, recipes' `task:`) say
what the model does; `LossFields` (the stages that train) say how it learns; `DistillFields`
(the same stages) whether the model before the step teaches it. The values are
names, never code: `metric` and `decode` may name a user function (`FILE.py:fn`,
`pkg.module:fn`), imported only because the user named it (`edgeprune.user_code`).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from edgeprune.errors import UserError
from edgeprune.options import StageOptions
from edgeprune.tasks.base import TASK_NAMES

DECODERS = ("postprocess", "yolo")
"""Named detection output formats: TFLite DetectionPostProcess (boxes, classes, scores,
count) and a raw YOLO-style head [1, 4+C, N] decoded with NMS; else FILE.py:fn."""


class TaskFields(StageOptions):
    """What the model does; None: inferred from the data's labels and the model's outputs."""

    task: str | None = Field(
        None,
        description="classification | regression | segmentation | detection | custom "
        "(default: inferred from labels and outputs).",
    )
    metric: str | None = Field(
        None,
        description="custom task: FILE.py:fn or pkg.module:fn, called (y_true, y_pred) -> {name: value}.",
    )
    decode: str | None = Field(
        None,
        description="detection outputs: postprocess | yolo | FILE.py:fn (default: from the outputs).",
    )

    @model_validator(mode="before")
    @classmethod
    def _task_choice(cls, data: Any) -> Any:
        if isinstance(data, dict):
            task = data.get("task")
            if task is not None and task not in TASK_NAMES:
                raise UserError(
                    f"task {task!r} is not one of {', '.join(TASK_NAMES)}", params=("task",)
                )
            if task == "custom" and not data.get("metric"):
                raise UserError(
                    "task custom needs metric FILE.py:fn (or pkg.module:fn)", params=("metric",)
                )
            if data.get("metric") and task not in (None, "custom"):
                raise UserError(
                    f"metric names a custom metric function; task {task!r} has its own metrics",
                    params=("metric", "task"),
                )
            decode = data.get("decode")
            if decode is not None and task not in (None, "detection"):
                raise UserError(
                    f"decode is for detection models, not task {task!r}", params=("decode",)
                )
            if decode is not None and decode not in DECODERS and ":" not in str(decode):
                raise UserError(
                    f"decode {decode!r} is not one of {', '.join(DECODERS)} or FILE.py:fn",
                    params=("decode",),
                )
        return data


class LossFields(StageOptions):
    """The training loss: the model's own compiled loss, else the task's default."""

    loss: str | None = Field(
        None,
        description="Training loss: a Keras loss name (mse, huber, ...) or FILE.py:fn "
        "(default: the model's compiled loss, else the task's).",
    )


DEFAULT_TEMPERATURE = 1.0
DEFAULT_ALPHA = 0.5
"""What benchmarks/bench_distill.py measures (issue 18's digits setup, seeds 0-2 to choose,
3-5 to confirm; docs/architecture.md): with gradual pruning's --distill schedule (peak 4e-3,
cosine over the hold) temperature 1 kept 90 % sparsity within about a point of the dense
model and, unlike temperature 2, was no worse than plain pruning at 80 % (temperature 2 pulls
the student towards its teacher's accuracy, which label-only fine-tuning goes past)."""


class DistillFields(StageOptions):
    """Distillation from the model before the step (the teacher) while the step trains.

    The loss is `(1 - alpha) * task loss + alpha * distillation term`: for classifiers the
    KL divergence of temperature-softened outputs (times temperature squared, as Hinton et
    al.), for other tasks matching the teacher's outputs (`edgeprune.tasks.distill`).
    """

    distill: bool = Field(
        False, description="Distil from the model before this step (the teacher) while training."
    )
    temperature: float = Field(
        DEFAULT_TEMPERATURE,
        gt=0,
        le=100,
        description="Distillation temperature: softens the classifier's outputs (with --distill).",
    )
    alpha: float = Field(
        DEFAULT_ALPHA,
        ge=0,
        le=1,
        description="Weight of the distillation term against the task loss (with --distill).",
    )

    @model_validator(mode="before")
    @classmethod
    def _distill_given(cls, data: Any) -> Any:
        """temperature and alpha shape distillation only: set without `distill` they would
        silently do nothing, so they are refused."""
        if isinstance(data, dict) and not data.get("distill"):
            shaped = [
                name
                for name, default in (
                    ("temperature", DEFAULT_TEMPERATURE),
                    ("alpha", DEFAULT_ALPHA),
                )
                if data.get(name, default) != default
            ]
            if shaped:
                raise UserError(
                    f"{', '.join(shaped)} shape distillation; add distill or leave them out",
                    params=(*shaped, "distill"),
                )
        return data
