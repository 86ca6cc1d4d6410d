"""Every QAT option, defined and validated once: `QatOptions` (the `qat` command's flags,
the recipe's `qat` step and `ep.qat` take these fields)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from edgeprune.errors import UserError
from edgeprune.options import CustomObjectsFields
from edgeprune.tasks.options import DistillFields, LossFields, TaskFields


class QatOptions(TaskFields, LossFields, DistillFields, CustomObjectsFields):
    """How to fine-tune a model with fake-quantized int8 arithmetic."""

    stage = "qat"

    data: str | None = Field(
        None, description="Training data for QAT (digits, an .npz with x and y, a folder)."
    )
    epochs: int = Field(3, le=100_000, description="QAT fine-tuning epochs (>= 1).")
    batch_size: int = Field(32, ge=1, description="QAT batch size.")
    learning_rate: float = Field(
        1e-4,
        description="QAT learning rate (Adam); small, since it fine-tunes a trained model.",
    )
    seed: int = Field(0, ge=0, description="Random seed of the fine-tune.")
    preserve_sparsity: bool = Field(
        True,
        description="Keep every zero weight exactly zero through QAT and in the int8 kernels.",
    )

    @model_validator(mode="before")
    @classmethod
    def _check(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        epochs = data.get("epochs")
        if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs < 1:
            raise UserError(f"epochs must be >= 1, got {epochs}", params=("epochs",))
        rate = data.get("learning_rate")
        if isinstance(rate, int | float) and not isinstance(rate, bool) and not 0 < rate < 1:
            raise UserError(
                f"learning_rate must be in (0, 1), e.g. 1e-4, got {rate!r}",
                params=("learning_rate",),
            )
        return data

    def training_dict(self) -> dict[str, Any]:
        """The options the manifest records."""
        return self.to_dict()
