"""What a variant must meet on a device besides the accuracy budget: latency, RAM, flash.

`ConstraintOptions` is the one definition (defaults, bounds, help text): the recipe's
`constraints:` section (global, and per device under `constraints.devices`), the flags of
`edgeprune run` and the keywords of `run_recipe` are made from it. Every field is optional
and None means "not set", so the layers stack: the recipe's global limits, then the
device's, then what the caller passed (flags win).

When a limit counts as met (documented in configs/recipes/README.md):
- latency: the chosen percentile's point estimate is <= the limit. When its 95 %
  interval straddles the limit the check says "at the limit" (met, but a re-measure may
  flip it), so the estimate decides and the interval is shown, never hidden.
- peak memory: the agent's peak resident set (VmHWM) of the measuring child, in MB of
  1024 kB, is <= the limit (it includes the runtime's own ~tens of MB).
- model size: the .tflite file in kB (1000 bytes) is <= the limit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import Field

from edgeprune.options import StageOptions

PERCENTILES = (50, 90, 99)
DEFAULT_PERCENTILE = 50


class ConstraintOptions(StageOptions):
    """Limits a recommended variant must meet (None = no limit)."""

    stage = "constraints"

    max_latency_ms: float | None = Field(
        None,
        gt=0,
        le=3_600_000,
        description="Latency limit in ms at --latency-percentile (e.g. a frame deadline: 33).",
    )
    latency_percentile: Literal[50, 90, 99] | None = Field(
        None,
        description="Which latency percentile the limit is on: 50, 90 or 99 (default 50).",
    )
    max_peak_memory_mb: float | None = Field(
        None,
        gt=0,
        le=1_048_576,
        description="Limit on the peak resident memory of the measuring process, in MB.",
    )
    max_model_kb: float | None = Field(
        None,
        gt=0,
        le=100_000_000,
        description="Limit on the .tflite file size in kB (flash), 1 kB = 1000 bytes.",
    )

    def over(self, *layers: ConstraintOptions | None) -> ConstraintOptions:
        """These limits with every field a later layer sets replaced by that layer's."""
        values = self.model_dump()
        for layer in layers:
            if layer is not None:
                values.update(layer.model_dump(exclude_none=True))
        return ConstraintOptions.create(**values)

    @property
    def percentile(self) -> int:
        return self.latency_percentile or DEFAULT_PERCENTILE

    def is_empty(self) -> bool:
        return all(v is None for v in self.model_dump().values())

    def describe(self) -> str:
        """'p90 <= 33 ms, peak memory <= 200 MB' (or 'none')."""
        parts = []
        if self.max_latency_ms is not None:
            parts.append(f"p{self.percentile} <= {self.max_latency_ms:g} ms")
        if self.max_peak_memory_mb is not None:
            parts.append(f"peak memory <= {self.max_peak_memory_mb:g} MB")
        if self.max_model_kb is not None:
            parts.append(f"model <= {self.max_model_kb:g} kB")
        return ", ".join(parts) or "none"


CONSTRAINT_FIELDS = tuple(ConstraintOptions.model_fields)


@dataclass(frozen=True)
class Breach:
    """One constraint a variant breaks: by how much, in the constraint's unit."""

    constraint: str  # a ConstraintOptions field name, or "accuracy_budget"
    limit: float | None
    value: float | None  # None: the number was not measured
    text: str

    @property
    def over_by(self) -> float | None:
        if self.value is None or self.limit is None:
            return None
        return self.value - self.limit

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["over_by"] = self.over_by
        return data


@dataclass(frozen=True)
class Measured:
    """The numbers of one variant on one device the constraints look at."""

    latency_ms: dict[int, float | None]  # percentile -> point estimate
    latency_ci: dict[int, tuple[float, float] | None]
    peak_rss_kb: int | None
    size_bytes: int | None


def check(limits: ConstraintOptions, measured: Measured) -> tuple[list[Breach], list[str]]:
    """The constraints `measured` breaks, and notes on met ones ("at the limit")."""
    from edgeprune.recipes.formatting import ms

    breaches: list[Breach] = []
    notes: list[str] = []
    if limits.max_latency_ms is not None:
        q = limits.percentile
        limit = limits.max_latency_ms
        value = measured.latency_ms.get(q)
        ci = measured.latency_ci.get(q)
        shown = "" if ci is None else f" (95 % {ms(ci[0])}–{ms(ci[1])})"
        if value is None:
            breaches.append(
                Breach(
                    "max_latency_ms",
                    limit,
                    None,
                    f"p{q} not measured (too few runs for p{q}; raise bench.runs)",
                )
            )
        elif value > limit:
            breaches.append(
                Breach(
                    "max_latency_ms",
                    limit,
                    value,
                    f"p{q} {ms(value)} ms{shown} is {ms(value - limit)} ms "
                    f"({(value / limit - 1) * 100:.0f} %) over {limit:g} ms",
                )
            )
        elif ci is not None and ci[1] > limit:
            notes.append(f"p{q} {ms(value)} ms is at the limit {limit:g} ms{shown}")
    mb = None if measured.peak_rss_kb is None else measured.peak_rss_kb / 1024
    kb = None if measured.size_bytes is None else measured.size_bytes / 1000
    for name, cap, value, what, unit, unknown in (
        (
            "max_peak_memory_mb",
            limits.max_peak_memory_mb,
            mb,
            "peak memory",
            "MB",
            "peak memory not measured",
        ),
        ("max_model_kb", limits.max_model_kb, kb, "model", "kB", "model size unknown"),
    ):
        if cap is None:
            continue
        if value is None:
            breaches.append(Breach(name, cap, None, unknown))
        elif value > cap:
            text = f"{what} {value:.1f} {unit} is {value - cap:.1f} {unit} over {cap:g} {unit}"
            breaches.append(Breach(name, cap, value, text))
    return breaches, notes


def per_device_limits(
    base: ConstraintOptions,
    per_device: dict[str, ConstraintOptions],
    device: str,
    tags: Iterable[str] = (),
    given: ConstraintOptions | None = None,
) -> ConstraintOptions:
    """A device's limits: global, then its tags' entries (in order), its name's, then `given`."""
    layers = [per_device[t] for t in tags if t in per_device]
    if device in per_device:
        layers.append(per_device[device])
    return base.over(*layers, given)
