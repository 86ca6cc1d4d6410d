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

QUANTIZE_MODES = ("none", "dynamic", "float16", "int8", "int16x8")
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

    quantize: str = Field(
        "none",
        description="none | dynamic | float16 | int8 | int16x8 (16-bit activations, 8-bit weights).",
    )
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

    keep_float: list[str] = Field(
        default_factory=list,
        description="With quantize int8: keep layers whose name matches this glob in float "
        "(repeatable or comma-separated; see `edgeprune quant-report`).",
    )

    @model_validator(mode="before")
    @classmethod
    def _choices(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = {**data, "keep_float": keep_float_globs(data.get("keep_float"))}
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
            if io == "int8" and quantize == "int16x8":
                raise UserError(
                    "io int8 cannot go with quantize int16x8: its activations are 16-bit, so "
                    "its I/O stays float (use io float)",
                    params=("io", "quantize"),
                )
            if io == "int8" and quantize != "int8":
                raise UserError(
                    "io int8 needs quantize int8 (only a full-integer model has int8 I/O)",
                    params=("io", "quantize"),
                )
            _check_keep_float(data["keep_float"], quantize, io)
            if data["keep_float"] and data.get("sparse_weights") is True:
                raise UserError(
                    "keep_float cannot go with sparse_weights: XNNPACK's delegate cannot "
                    "prepare sparse-stored int8 weights, and the selective quantizer keeps "
                    "weights dense",
                    params=("keep_float", "sparse_weights"),
                )
        return data


def keep_float_globs(value: Any) -> list[str]:
    """Globs from a string ("a,b"), a list of strings (each may hold commas) or None."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(item, str) for item in items):
        raise UserError(
            f"keep_float takes layer-name globs (strings), not {value!r}", params=("keep_float",)
        )
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


def _check_keep_float(globs: list[str], quantize: str, io: str) -> None:
    """keep_float is selective int8: it means nothing for other modes, and its float layers
    need float I/O (TFLite's selective quantizer keeps the model's inputs and outputs float)."""
    if not globs:
        return
    if quantize != "int8":
        raise UserError(
            f"keep_float needs quantize int8 (it keeps some layers float in an int8 model), "
            f"not quantize {quantize}",
            params=("keep_float", "quantize"),
        )
    if io == "int8":
        raise UserError(
            "keep_float cannot go with io int8: a selectively quantized model keeps float "
            "inputs and outputs (use io float)",
            params=("keep_float", "io"),
        )


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


class QuantReportOptions(CustomObjectsFields):
    """What `quant-report` measures: which int8 layers hurt, and what keeping them float
    recovers in the task metric and costs in latency (devices and bench runs are given
    beside these, as for `bench`)."""

    stage = "quant_report"

    data: str | None = Field(
        None,
        description="Dataset that calibrates the int8 model and scores it (digits, .npz, folder).",
    )
    top: int = Field(10, ge=1, le=10_000, description="Layers to list, worst first.")
    keep: int = Field(
        1,
        ge=0,
        le=1_000,
        description="Keep the k worst layers float in the selective model (0: no selective model).",
    )
    calibration_samples: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="Training samples that calibrate the int8 model (default 200).",
    )
    samples: int = Field(
        200, ge=1, le=100_000, description="Validation samples the quantization debugger runs."
    )
    runs: int = Field(
        50, ge=1, le=1_000_000, description="Timed runs of each model on each device."
    )
