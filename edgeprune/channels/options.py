"""Every channel-pruning option, defined and validated once: `ChannelOptions`.

The `channels` command's flags, the recipe's `channels` and `finetune` steps and the Python
verbs (`prune_channels`, `prune_channels_file`) take these fields. Errors name the
parameter (`ratio`); the CLI shows the flag (`--ratio`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from pydantic import Field, PrivateAttr, model_validator

from edgeprune.channels.criteria import CRITERIA, EQUALIZATIONS, NORMALIZERS
from edgeprune.errors import UserError
from edgeprune.files import check_log_dir
from edgeprune.options import CustomObjectsFields
from edgeprune.prune.rates import CONSTANT, check_decay, decay_field
from edgeprune.tasks.options import DistillFields, LossFields, TaskFields

MAX_RATIO = 0.95
DEFAULT_THRESHOLD = 0.1  # TAO's -pth default

SELECTION = (
    "ratio",
    "threshold",
    "criterion",
    "normalizer",
    "granularity",
    "min_filters",
    "exclude",
    "equalization",
)
"""Options that say which filters go (the rest shape the optional fine-tuning)."""

FINETUNE = (
    "epochs",
    "batch_size",
    "learning_rate",
    "learning_rate_decay",
    "seed",
    "tensorboard",
    "loss",
    "distill",
    "temperature",
    "alpha",
)
"""Fine-tuning options, shared with the recipe's `finetune` step."""


class ChannelOptions(TaskFields, LossFields, DistillFields, CustomObjectsFields):
    """Which filters to remove and, with `data`, how to fine-tune afterwards.

    Give `ratio` or `threshold` (neither: threshold 0.1, as TAO). After validation
    `threshold` is None when `ratio` is given and the threshold in use otherwise.
    """

    stage = "channels"

    ratio: float | None = Field(
        None, description="Remove about this fraction of each group's filters (0-0.95)."
    )
    threshold: float | None = Field(
        None,
        description="Remove filters whose normalized norm is at or below this (TAO -pth; default 0.1).",
    )
    criterion: str = Field("l1", description="Filter norm: l1 | l2.")
    normalizer: str = Field(
        "max", description="Divide norms by the layer's max | l2 norm (TAO -n)."
    )
    granularity: int = Field(8, ge=1, description="Keep a multiple of this many filters (TAO -pg).")
    min_filters: int = Field(
        16, ge=1, description="Keep at least this many filters per group (TAO -nf)."
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="Layer name or glob to leave unpruned (TAO -el); repeat or comma-separate.",
    )
    equalization: str = Field(
        "union",
        description="How tied layers vote: union | intersection | arithmetic_mean | geometric_mean (TAO -eq).",
    )
    data: str | None = Field(
        None, description="Fine-tune after pruning on this dataset (digits, .npz, folder)."
    )
    epochs: int = Field(
        3, ge=1, le=100_000, description="Fine-tuning epochs (default 3 when --data is given)."
    )
    batch_size: int = Field(32, ge=1, description="Fine-tuning batch size.")
    learning_rate: float = Field(1e-3, gt=0, lt=10, description="Fine-tuning learning rate (Adam).")
    learning_rate_decay: str = decay_field(CONSTANT, "Fine-tuning learning-rate decay")
    seed: int = Field(0, ge=0, description="Random seed of fine-tuning.")
    tensorboard: str | None = Field(
        None, description="TensorBoard log dir of the fine-tune: loss and metrics per epoch."
    )

    _given: frozenset[str] = PrivateAttr(default=frozenset())

    @model_validator(mode="wrap")
    @classmethod
    def _validate(cls, data: Any, handler: Any) -> Any:
        if isinstance(data, ChannelOptions) or not isinstance(data, dict):
            return handler(data)
        if set(data) - set(cls.model_fields):
            return handler(data)  # pydantic names the unknown option
        given = frozenset(data)
        epochs = data.get("epochs")
        if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs < 1:
            raise UserError(f"epochs must be >= 1, got {epochs}", params=("epochs",))
        if "learning_rate_decay" in data:
            check_decay(data["learning_rate_decay"])
        resolved = {**data, **check_selection(**{k: data[k] for k in SELECTION if k in data})}
        self = handler(resolved)
        if "epochs" in given and data["epochs"] != _DEFAULT_EPOCHS and self.data is None:
            raise UserError("epochs needs data DATASET to fine-tune on", params=("epochs", "data"))
        if self.learning_rate_decay != CONSTANT and self.data is None:
            raise UserError(
                "learning_rate_decay shapes the fine-tune, which needs data DATASET; add data "
                "or leave it out",
                params=("learning_rate_decay", "data"),
            )
        if self.tensorboard is not None and self.data is None:
            raise UserError(
                "tensorboard logs a fine-tune, which needs data DATASET; add data or leave it out",
                params=("tensorboard", "data"),
            )
        if self.distill and self.data is None:
            raise UserError(
                "distill teaches the fine-tune, which needs data DATASET; add data or leave it out",
                params=("distill", "data"),
            )
        check_log_dir(self.tensorboard)
        self._given = given
        return self

    @property
    def given(self) -> frozenset[str]:
        """The option names the caller set (the rest are defaults)."""
        return self._given

    def finetune_keywords(self) -> dict[str, Any]:
        """The fine-tuning options, as `channels.finetune.finetune` takes them."""
        return {name: getattr(self, name) for name in FINETUNE}

    def selection_dict(self) -> dict[str, Any]:
        """The filter-selection options as manifests and reports record them."""
        return {name: value for name, value in self.to_dict().items() if name in SELECTION}


_DEFAULT_EPOCHS = ChannelOptions.model_fields["epochs"].default


def check_selection(
    *,
    ratio: float | None = None,
    threshold: float | None = None,
    criterion: str = "l1",
    normalizer: str = "max",
    granularity: int = 8,
    min_filters: int = 16,
    exclude: Iterable[str] | str = (),
    equalization: str = "union",
) -> dict[str, Any]:
    """The selection options checked and settled (which of ratio / threshold is in use)."""
    if ratio is not None and threshold is not None:
        raise UserError("give ratio or threshold, not both", params=("ratio", "threshold"))
    if ratio is not None:
        ratio = _number(ratio, "ratio")
        if not 0.0 <= ratio <= MAX_RATIO:
            raise UserError(
                f"ratio {ratio:g} is outside [0, {MAX_RATIO}]; give the fraction of prunable "
                "filters to remove, e.g. ratio 0.5",
                params=("ratio",),
            )
    else:
        threshold = DEFAULT_THRESHOLD if threshold is None else _number(threshold, "threshold")
        if threshold < 0:
            raise UserError(
                f"threshold {threshold:g} is negative; normalized norms are in [0, 1], "
                "e.g. threshold 0.1",
                params=("threshold",),
            )
    _choice(criterion, CRITERIA, "criterion")
    _choice(normalizer, NORMALIZERS, "normalizer")
    _choice(equalization, EQUALIZATIONS, "equalization")
    for value, option in ((granularity, "granularity"), (min_filters, "min_filters")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise UserError(
                f"{option} must be a whole number >= 1, got {value!r}", params=(option,)
            )
    if isinstance(exclude, str):
        exclude = [exclude]
    patterns = [str(p) for p in exclude]
    if any(not p.strip() for p in patterns):
        raise UserError(
            "exclude got an empty name; give a layer name or glob, e.g. 'predictions'",
            params=("exclude",),
        )
    return {
        "ratio": ratio,
        "threshold": None if ratio is not None else threshold,
        "criterion": criterion,
        "normalizer": normalizer,
        "granularity": int(granularity),
        "min_filters": int(min_filters),
        "exclude": patterns,
        "equalization": equalization,
    }


def _number(value: Any, option: str) -> float:
    if isinstance(value, bool):
        raise UserError(f"{option} must be a number, got {value!r}", params=(option,))
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{option} must be a number, got {value!r}", params=(option,)) from None
    if not math.isfinite(number):
        raise UserError(f"{option} must be a finite number, got {value!r}", params=(option,))
    return number


def _choice(value: Any, allowed: tuple[str, ...], option: str) -> None:
    if value not in allowed:
        raise UserError(f"{option} {value!r} is not one of: {', '.join(allowed)}", params=(option,))
