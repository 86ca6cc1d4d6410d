"""Every `adapt` option, defined and validated once: `AdaptOptions`.

The `adapt` command's flags, the recipe's `adapt` step and `ep.adapt` take these fields.
Errors name the parameter (`target_latency`); the CLI shows the flag (`--target-latency`).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from edgeprune.channels.criteria import CRITERIA
from edgeprune.errors import UserError
from edgeprune.options import ClusterAddress, CustomObjectsFields, cluster_field
from edgeprune.prune.rates import COSINE, check_decay, decay_field
from edgeprune.tasks.options import DistillFields, LossFields, TaskFields

ADAPT_QUANTIZE = ("none", "int8")


class AdaptOptions(TaskFields, LossFields, DistillFields, CustomObjectsFields):
    """A latency target on one device (`target_latency` or `target_speedup`), the data to
    fine-tune on, and how the NetAdapt iterations step towards the target."""

    stage = "adapt"

    target_latency: float | None = Field(
        None, gt=0, le=3_600_000, description="Latency to reach on the device, in ms."
    )
    target_speedup: float | None = Field(
        None, gt=1, le=1000, description="Speed-up to reach over the measured input model."
    )
    data: str | None = Field(
        None, description="Dataset to fine-tune and evaluate on (digits, .npz, folder)."
    )
    device: str = Field("local", description="Device to measure on (inventory name or local).")
    quantize: str = Field(
        "none", description="Quantization that will ship, measured in the table: none | int8."
    )
    threads: int = Field(1, ge=1, le=256, description="Threads the model runs with on the device.")
    granularity: int = Field(
        8,
        ge=1,
        description="Candidate widths are multiples of this (give 16 on an x86 host, whose "
        "XNNPACK kernels tile by 16).",
    )
    min_filters: int = Field(8, ge=1, description="No group goes below this many filters.")
    criterion: str = Field("l1", description="Which filters go first: l1 | l2 norm.")
    step_reduction: float = Field(
        0.1, gt=0, lt=1, description="Latency cut per iteration, a fraction of the current one."
    )
    step_decay: float = Field(
        0.96, gt=0, le=1, description="The cut is multiplied by this after every iteration."
    )
    max_iterations: int = Field(30, ge=1, le=1000, description="Stop after this many iterations.")
    short_epochs: int = Field(
        1, ge=0, le=1000, description="Fine-tuning epochs of every proposal (short-term)."
    )
    long_epochs: int = Field(
        5, ge=0, le=100_000, description="Fine-tuning epochs of the final model (long-term)."
    )
    batch_size: int = Field(32, ge=1, description="Fine-tuning batch size.")
    learning_rate: float = Field(1e-3, gt=0, lt=10, description="Fine-tuning learning rate (Adam).")
    learning_rate_decay: str = decay_field(
        COSINE, "Learning-rate decay of every fine-tune (the proposals' and the long one)"
    )
    seed: int = Field(0, ge=0, description="Random seed of fine-tuning.")
    table_runs: int = Field(
        30, ge=5, le=100_000, description="Timed runs of each lookup-table entry."
    )
    table_remeasures: int = Field(
        2,
        ge=0,
        le=10,
        description="When the table's layer sums miss the whole models its calibration is "
        "fitted on by more than 5 %, measure both again up to this many times (the lower "
        "median of each is kept: load only adds time).",
    )
    runs: int = Field(
        100, ge=5, le=1_000_000, description="Timed runs of each whole-model measurement."
    )
    cluster: ClusterAddress | None = cluster_field()

    @model_validator(mode="before")
    @classmethod
    def _checks(cls, data: Any) -> Any:
        if not isinstance(data, dict) or set(data) - set(cls.model_fields):
            return data  # pydantic names the unknown option
        latency, speedup = data.get("target_latency"), data.get("target_speedup")
        if (latency is None) == (speedup is None):
            raise UserError(
                "give one target: target_latency MS or target_speedup X (e.g. 1.5)",
                params=("target_latency", "target_speedup"),
            )
        quantize = data.get("quantize", "none")
        if quantize not in ADAPT_QUANTIZE:
            raise UserError(
                f"quantize {quantize!r} is not one of {', '.join(ADAPT_QUANTIZE)}",
                params=("quantize",),
            )
        if "learning_rate_decay" in data:
            check_decay(data["learning_rate_decay"])
        criterion = data.get("criterion", "l1")
        if criterion not in CRITERIA:
            raise UserError(
                f"criterion {criterion!r} is not one of {', '.join(CRITERIA)}",
                params=("criterion",),
            )
        if data.get("distill") and data.get("long_epochs", 5) == 0:
            raise UserError(
                "distill teaches the long fine-tune, and long_epochs is 0; "
                "give long_epochs N or leave distill out",
                params=("distill", "long_epochs"),
            )
        return data

    def finetune_keywords(self, epochs: int) -> dict[str, Any]:
        """What `channels.finetune.finetune` takes for a proposal's short fine-tune of
        `epochs` epochs (decayed as the long one: a one-epoch score at a constant rate is
        wherever its last full step left the weights, a noisy ranking)."""
        return {
            "epochs": epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "learning_rate_decay": self.learning_rate_decay,
            "seed": self.seed,
            "loss": self.loss,
        }

    def long_finetune_keywords(self) -> dict[str, Any]:
        """What `channels.finetune.finetune` takes for the long fine-tune of the result:
        `long_epochs`, distilled from adapt's input with `distill` (the proposals' short
        fine-tunes do not distil: they only rank them)."""
        return {
            **self.finetune_keywords(self.long_epochs),
            "distill": self.distill,
            "temperature": self.temperature,
            "alpha": self.alpha,
        }
