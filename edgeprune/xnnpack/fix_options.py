"""The options of `xnnpack-fix`, defined and validated once: `FixOptions`."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from edgeprune.options import CustomObjectsFields
from edgeprune.tflite.options import at_least_one


class FixOptions(CustomObjectsFields):
    """What the fixed model's outputs are compared on: a dataset, or seeded noise."""

    stage = "xnnpack_fix"

    data: str | None = Field(
        None, description="Measure the output change on this dataset (default: noise)."
    )
    samples: int = Field(16, ge=1, description="Inputs to compare outputs on.")
    seed: int = Field(0, ge=0, description="Seed of the random inputs compared without data.")

    @model_validator(mode="before")
    @classmethod
    def _samples(cls, data: Any) -> Any:
        at_least_one(data, "samples", "samples {value} must be at least 1")
        return data
