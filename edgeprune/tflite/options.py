"""The options of `convert` and `evaluate`, defined and validated once.

The CLI's flags, the recipe's `convert` step and the Python verbs take these fields.
Errors name the parameter (`quantize`); the CLI shows the flag (`--quantize`).
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, model_validator

from edgeprune.errors import UserError
from edgeprune.options import CustomObjectsFields
from edgeprune.tasks.options import TaskFields

QUANTIZE_MODES = ("none", "dynamic", "float16", "int8")
IO_TYPES = ("float", "int8")
CALIBRATION_SAMPLES = 200


def at_least_one(data: Any, name: str, message: str) -> None:
    """Refuse a whole number below 1 for `name` with `message` ({value} is filled in)."""
    value = data.get(name) if isinstance(data, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value < 1:
        raise UserError(message.format(value=value), params=(name,))


class ConvertOptions(TaskFields, CustomObjectsFields):
    """How to convert to .tflite. `sparse_weights` None: sparse when kernels are >= 50 % zero.

    The task (TaskFields) scores the result on `data`: inferred when unambiguous, else a note;
    named, a mismatch is an error before converting.
    Whether int8 has its calibration data is checked where the dataset is known
    (`conversion.check_options`), since a recipe gives it in its `data` section.
    """

    stage = "convert"

    quantize: str = Field("none", description="none | dynamic | float16 | int8.")
    sparse_weights: bool | None = Field(
        None,
        description="Store weights in TFLite's sparse format (default: on when kernels are >= 50% zero).",
    )
    data: str | None = Field(
        None, description="Dataset for int8 calibration and accuracy (digits, .npz, folder)."
    )
    io: str = Field("float", description="Input/output type of an int8 model: float | int8.")
    calibration_samples: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="Training samples that calibrate an int8 model (default 200; in a recipe, "
        "its data.calibration_samples).",
    )

    @model_validator(mode="before")
    @classmethod
    def _choices(cls, data: Any) -> Any:
        if isinstance(data, dict):
            quantize, io = data.get("quantize", "none"), data.get("io", "float")
            if quantize not in QUANTIZE_MODES:
                raise UserError(
                    f"quantize {quantize!r} is not one of {', '.join(QUANTIZE_MODES)}",
                    params=("quantize",),
                )
            if io not in IO_TYPES:
                raise UserError(f"io {io!r} is not one of {', '.join(IO_TYPES)}", params=("io",))
            at_least_one(
                data, "calibration_samples", "calibration_samples must be at least 1, not {value}"
            )
            if io == "int8" and quantize != "int8":
                raise UserError(
                    "io int8 needs quantize int8 (only a full-integer model has int8 I/O)",
                    params=("io", "quantize"),
                )
        return data


class EvaluateOptions(TaskFields, CustomObjectsFields):
    """What to evaluate on and against. `data` and `reference` may also be loaded objects;
    the task (TaskFields) is inferred from the labels and outputs unless named."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    stage = "evaluate"

    data: Any = Field(
        description="Dataset: digits, an .npz (any y, or x only with --reference), an image "
        "folder or COCO .json."
    )
    reference: Any = Field(None, description="Another model to compare outputs with (any format).")
    batch_size: int = Field(64, ge=1, description="Samples per invoke for .tflite.")

    @model_validator(mode="before")
    @classmethod
    def _batch(cls, data: Any) -> Any:
        at_least_one(data, "batch_size", "batch_size must be at least 1, not {value}")
        return data
