"""Gradual pruning's learning rate, defined once: its defaults, and the rate over the steps.

Without distillation Adam runs at `LEARNING_RATE` throughout. With `distill` the defaults are
`DISTILL_LEARNING_RATE` and the `cosine` decay: the peak rate while the masks change (the
ramp), then a cosine from the peak to 0 over the steps at final sparsity, so the student
lands on a settled point of its fixed sparse support instead of wherever the last large step
left it. Measured in benchmarks/bench_distill.py (issue 18's digits setup, numbers in
docs/architecture.md): this schedule, not the teacher, is what recovers 90 % sparsity there;
plain pruning on the same schedule does as well (its own default is unchanged, so existing
plain results stay as they were). An explicit `learning_rate` or `learning_rate_decay` wins.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from edgeprune.errors import UserError

LEARNING_RATE = 1e-3
"""Adam's learning rate for gradual pruning without distillation."""
DISTILL_LEARNING_RATE = 4e-3
"""Adam's peak learning rate for gradual pruning with `distill`."""
CONSTANT = "constant"
COSINE = "cosine"
DECAYS = (CONSTANT, COSINE)
"""`learning_rate_decay`: constant, or cosine to 0 over the steps at final sparsity."""


def check_decay(decay: Any) -> str:
    """`decay` if it is one of `DECAYS`, else a UserError naming `learning_rate_decay`."""
    if decay not in DECAYS:
        raise UserError(
            f"learning_rate_decay {decay!r} is not one of {', '.join(DECAYS)}",
            params=("learning_rate_decay",),
        )
    return str(decay)


def decay_field(default: str, what: str) -> Any:
    """The one definition of a fine-tune's `learning_rate_decay` (channels' fine-tune and
    the recipe's finetune step default to constant, adapt's long fine-tune to cosine);
    `what` names the fine-tune it shapes. Gradual pruning's (a default that depends on
    `distill`, a decay that starts at the end of the ramp) is its own."""
    return Field(
        default,
        description=f"{what}: constant | cosine (the rate falls to 0 by the last step, so the "
        f"model lands on a settled point; default {default}).",
    )


def default_learning_rate(distill: bool) -> float:
    """The learning rate gradual pruning uses when none is given."""
    return DISTILL_LEARNING_RATE if distill else LEARNING_RATE


def default_decay(distill: bool) -> str:
    """The learning-rate decay gradual pruning uses when none is given."""
    return COSINE if distill else CONSTANT


def hold_start(begin_step: int, end_step: int | None) -> int:
    """The first step at final sparsity: the schedule's end_step (masks stop changing),
    else its begin_step (a constant schedule is at final sparsity from its start)."""
    return end_step if end_step is not None else begin_step


def optimizer_rate(rate: float, decay: str, start: int, total_steps: int) -> Any:
    """What Adam takes: `rate`, or with cosine a stock Keras `CosineDecay` holding `rate`
    until step `start` (its warm-up, from `rate` to `rate`) and then decaying to 0 at
    `total_steps` (a saved model's optimizer loads in stock Keras)."""
    if decay == CONSTANT:
        return rate
    from edgeprune import _tf

    keras = _tf.keras()
    return keras.optimizers.schedules.CosineDecay(
        rate,
        decay_steps=max(1, total_steps - start),
        alpha=0.0,
        warmup_target=rate,
        warmup_steps=start,
    )
