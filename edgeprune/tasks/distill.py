"""Distillation: the model before a training step teaches the model the step trains.

Every training stage (gradual pruning, channel fine-tuning, QAT, adapt's long fine-tune)
asks `distilled_fit` for the loss to compile with and the targets to fit on; the teacher's
outputs are computed once on the training inputs and travel beside the labels, so no
custom train step is needed and any Keras backend fits it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeprune.tasks.base import Task


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
    """
    raise NotImplementedError("edgeprune.tasks.distill.distilled_fit (issue 18)")
