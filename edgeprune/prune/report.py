"""What a pruning run did: per-kernel target and achieved sparsity, and the totals.

`achieved` is measured on the weights after pruning (exact zeros / size), not copied from
the plan. Totals: `overall` is over the pruned kernels (what the target applies to);
`all_kernels` also counts the kernels of prunable types that were skipped (min_params,
excluded), which is what `edgeprune inspect` reports as kernel sparsity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgeprune.prune.patterns import Pattern
from edgeprune.prune.policy import PruneTarget
from edgeprune.prune.selection import SkippedKernel
from edgeprune.prune.unknown import UnknownLayer


@dataclass
class KernelResult:
    layer: str
    class_name: str
    shape: tuple[int, ...]
    size: int
    target: float
    zeros: int
    pattern_violations: int | None = None

    @property
    def achieved(self) -> float:
        return self.zeros / self.size if self.size else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "shape": list(self.shape), "achieved": self.achieved}


@dataclass
class PruneReport:
    """Returned by `prune_model` and by the gradual API; `to_dict()` is what --json prints."""

    sparsity: float
    scope: str
    pattern: str | None
    policy: str
    kernels: list[KernelResult]
    skipped: list[SkippedKernel] = field(default_factory=list)
    unknown_layers: list[UnknownLayer] = field(default_factory=list)

    @property
    def pruned_size(self) -> int:
        return sum(k.size for k in self.kernels)

    @property
    def overall(self) -> float:
        """Achieved sparsity over the pruned kernels."""
        size = self.pruned_size
        return sum(k.zeros for k in self.kernels) / size if size else 0.0

    @property
    def all_kernels(self) -> float:
        """Achieved sparsity over every kernel of a prunable type, skipped ones included."""
        size = self.pruned_size + sum(s.size for s in self.skipped)
        zeros = sum(k.zeros for k in self.kernels) + sum(s.zeros for s in self.skipped)
        return zeros / size if size else 0.0

    @property
    def pattern_ok(self) -> bool | None:
        """True when every pruned kernel satisfies the pattern exactly (None: no pattern)."""
        if self.pattern is None:
            return None
        return all(k.pattern_violations == 0 for k in self.kernels)

    def layer_sparsity(self) -> dict[str, float]:
        return {k.layer: k.achieved for k in self.kernels}

    def manifest_sparsity(self) -> dict[str, Any]:
        """The manifest's `sparsity` object: overall and per layer."""
        return {
            "overall": self.overall,
            "all_kernels": self.all_kernels,
            "target": self.sparsity,
            "layers": self.layer_sparsity(),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "sparsity": self.sparsity,
            "scope": self.scope,
            "pattern": self.pattern,
            "policy": self.policy,
            "overall": self.overall,
            "all_kernels": self.all_kernels,
            "pruned_params": self.pruned_size,
            "pattern_ok": self.pattern_ok,
            "kernels": [k.to_dict() for k in self.kernels],
            "skipped": [s.to_dict() for s in self.skipped],
            "unknown_layers": [u.to_dict() for u in self.unknown_layers],
        }


def measure_report(
    targets: Sequence[PruneTarget],
    planned: Sequence[float],
    skipped: Sequence[SkippedKernel],
    *,
    sparsity: float,
    scope: str,
    pattern: Pattern | None,
    policy: str,
    unknown: Sequence[UnknownLayer] = (),
) -> PruneReport:
    """Read the kernels back and count what pruning actually left."""
    kernels = []
    for target, plan in zip(targets, planned, strict=True):
        values = np.asarray(target.variable.numpy())
        violations = pattern.violations(values, target.layout) if pattern is not None else None
        kernels.append(
            KernelResult(
                layer=target.label,
                class_name=target.class_name,
                shape=target.shape,
                size=target.size,
                target=float(plan),
                zeros=int(values.size - np.count_nonzero(values)),
                pattern_violations=violations,
            )
        )
    return PruneReport(
        sparsity=sparsity,
        scope=scope,
        pattern=None if pattern is None else str(pattern),
        policy=policy,
        kernels=kernels,
        skipped=list(skipped),
        unknown_layers=list(unknown),
    )
