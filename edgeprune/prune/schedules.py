"""Pruning schedules: tiny serializable classes answering ``step -> (should_prune, sparsity)``.

`step` counts optimizer steps from the start of pruning (the callback's own counter). As in
tfmot, a schedule prunes at `begin_step` and then every `frequency` steps; unlike tfmot it
also prunes at `end_step` itself, so the final sparsity is reached even when
``end_step - begin_step`` is not a multiple of `frequency`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from edgeprune.errors import UserError

MAX_SPARSITY = 0.99


def check_sparsity(value: float, what: str = "sparsity") -> float:
    """A sparsity in [0, 0.99], or a UserError naming `what`."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(
            f"{what} {value!r} is not a number; give a fraction like 0.8", params=_named(what)
        ) from None
    if not 0.0 <= number <= MAX_SPARSITY:
        raise UserError(
            f"{what} {value} is outside [0, {MAX_SPARSITY}]; give a fraction like 0.8",
            params=_named(what),
        )
    return number


def _named(what: str) -> tuple[str, ...]:
    """`what` as a parameter when it is one (`sparsity`), else nothing to turn into a flag."""
    return (what,) if what.isidentifier() else ()


class PruningSchedule(ABC):
    """`schedule(step) -> (should_prune, sparsity)`; `get_config()` round-trips via `from_config`."""

    kind: ClassVar[str]

    def __init__(self, begin_step: int, end_step: int | None, frequency: int) -> None:
        if int(begin_step) != begin_step or begin_step < 0:
            raise UserError(f"begin-step {begin_step} must be a whole number >= 0")
        if end_step is not None and (int(end_step) != end_step or end_step <= begin_step):
            raise UserError(f"end-step {end_step} must be greater than begin-step {begin_step}")
        if int(frequency) != frequency or frequency < 1:
            raise UserError(f"frequency {frequency} must be a whole number of steps >= 1")
        self.begin_step = int(begin_step)
        self.end_step = None if end_step is None else int(end_step)
        self.frequency = int(frequency)

    @property
    @abstractmethod
    def final_sparsity(self) -> float:
        """The sparsity the schedule ends at."""

    @abstractmethod
    def sparsity_at(self, step: int) -> float:
        """The target sparsity at `step` (whether or not the schedule prunes there)."""

    def should_prune(self, step: int) -> bool:
        if step < self.begin_step or (self.end_step is not None and step > self.end_step):
            return False
        return (step - self.begin_step) % self.frequency == 0 or step == self.end_step

    def __call__(self, step: int) -> tuple[bool, float]:
        return self.should_prune(step), self.sparsity_at(step)

    def get_config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "kind")
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.get_config().items())))


class ConstantSparsity(PruningSchedule):
    """Prune to `target_sparsity` at `begin_step`, then re-select every `frequency` steps."""

    kind = "constant"

    def __init__(
        self,
        target_sparsity: float,
        begin_step: int = 0,
        end_step: int | None = None,
        frequency: int = 100,
    ) -> None:
        super().__init__(begin_step, end_step, frequency)
        self.target_sparsity = check_sparsity(target_sparsity)

    @property
    def final_sparsity(self) -> float:
        return self.target_sparsity

    def sparsity_at(self, step: int) -> float:
        return self.target_sparsity if step >= self.begin_step else 0.0

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "target_sparsity": self.target_sparsity}


class PolynomialDecay(PruningSchedule):
    """Sparsity rises from `initial_sparsity` to `final_sparsity` along a power curve.

    ``s(t) = final + (initial - final) * (1 - p)**power`` with ``p`` the fraction of
    ``[begin_step, end_step]`` done (Zhu & Gupta 2017): fast at first, gentle at the end.
    """

    kind = "polynomial"

    def __init__(
        self,
        initial_sparsity: float,
        final_sparsity: float,
        begin_step: int,
        end_step: int,
        power: float = 3.0,
        frequency: int = 100,
    ) -> None:
        if end_step is None:
            raise UserError("a polynomial schedule needs an end-step")
        super().__init__(begin_step, end_step, frequency)
        self.initial_sparsity = check_sparsity(initial_sparsity, "initial sparsity")
        self._final = check_sparsity(final_sparsity)
        if self.initial_sparsity > self._final:
            raise UserError(
                f"initial sparsity {initial_sparsity} is above the final sparsity {final_sparsity}"
            )
        if not power > 0:
            raise UserError(f"power {power} must be > 0 (3 is the usual choice)")
        self.power = float(power)

    @property
    def final_sparsity(self) -> float:
        return self._final

    def sparsity_at(self, step: int) -> float:
        assert self.end_step is not None
        if step < self.begin_step:
            return 0.0
        done = min(1.0, (step - self.begin_step) / (self.end_step - self.begin_step))
        return self._final + (self.initial_sparsity - self._final) * (1.0 - done) ** self.power

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "initial_sparsity": self.initial_sparsity,
            "final_sparsity": self._final,
            "power": self.power,
        }


SCHEDULES: dict[str, type[PruningSchedule]] = {
    ConstantSparsity.kind: ConstantSparsity,
    PolynomialDecay.kind: PolynomialDecay,
}


def schedule_from_config(config: dict[str, Any]) -> PruningSchedule:
    """Rebuild a schedule from `get_config()` output."""
    options = dict(config)
    kind = options.pop("kind", None)
    if kind not in SCHEDULES:
        raise UserError(f"schedule kind {kind!r} is not one of {', '.join(SCHEDULES)}")
    return SCHEDULES[kind](**options)
