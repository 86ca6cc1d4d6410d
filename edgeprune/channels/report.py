"""What channel pruning did, in numbers: filters per group and layer, params and MACs before/after.

`ChannelReport.to_dict()` goes into the manifest's `extra["channels"]`; `compare_models` and
`size_change_from_manifest` give `edgeprune inspect` its "before -> after" lines.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from edgeprune.keras_stats import model_stats


@dataclass
class GroupReport:
    """One dependency group: layers whose filters are removed together."""

    name: str
    layers: list[str]
    filters_before: int
    filters_after: int
    status: str  # "pruned" | "unchanged" | "fixed"
    reason: str | None = None


@dataclass
class ChannelReport:
    options: dict[str, Any]
    groups: list[GroupReport]
    layers: dict[str, dict[str, int]]  # layer -> {"before": n, "after": n}
    skipped_layers: list[dict[str, Any]]  # unknown or channel-mixing layers left alone
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    notes: list[str] = field(default_factory=list)
    accuracy: dict[str, Any] | None = None

    @property
    def prunable_before(self) -> int:
        return sum(g.filters_before for g in self.groups if g.status != "fixed")

    @property
    def prunable_after(self) -> int:
        return sum(g.filters_after for g in self.groups if g.status != "fixed")

    @property
    def removed_fraction(self) -> float:
        """Fraction of the prunable channels removed (channels of fixed groups not counted)."""
        before = self.prunable_before
        return 1.0 - self.prunable_after / before if before else 0.0

    @property
    def unknown_layers(self) -> list[str]:
        return [s["name"] for s in self.skipped_layers if s["unknown"]]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["prunable_filters"] = {"before": self.prunable_before, "after": self.prunable_after}
        data["removed_fraction"] = self.removed_fraction
        data["unknown_layers"] = self.unknown_layers
        data["params"] = _change(self.params_before, self.params_after)
        data["macs"] = _change(self.macs_before, self.macs_after)
        return data


def _change(before: int, after: int) -> dict[str, Any]:
    return {
        "before": int(before),
        "after": int(after),
        "ratio": (after / before) if before else None,
    }


def compare_models(before: Any, after: Any) -> dict[str, Any]:
    """Params and MACs (batch 1) of two Keras models: {"params": {...}, "macs": {...}}."""
    old, new = model_stats(before), model_stats(after)
    return {"params": _change(old.params, new.params), "macs": _change(old.macs, new.macs)}


def size_change_from_manifest(manifest: Any) -> dict[str, Any] | None:
    """The params/MACs change recorded by `edgeprune channels`, or None for other manifests.

    `manifest` is an `edgeprune.manifest.Manifest` (or its dict). Returns
    {"params": {"before", "after", "ratio"}, "macs": {...}, "removed_fraction": float}.
    """
    data = manifest.to_dict() if hasattr(manifest, "to_dict") else dict(manifest)
    channels = (data.get("extra") or {}).get("channels")
    if not isinstance(channels, dict) or "params" not in channels or "macs" not in channels:
        return None
    return {
        "params": channels["params"],
        "macs": channels["macs"],
        "removed_fraction": channels.get("removed_fraction"),
    }
