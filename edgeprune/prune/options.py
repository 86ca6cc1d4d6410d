"""The options every pruning entry point shares, validated once with errors a user can act on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgeprune.errors import UserError
from edgeprune.prune.masks import SCOPES
from edgeprune.prune.patterns import NMPattern, Pattern, parse_pattern
from edgeprune.prune.policy import PrunePolicy, get_policy
from edgeprune.prune.schedules import check_sparsity
from edgeprune.prune.selection import DEFAULT_MIN_PARAMS

DEFAULT_MAX_LAYER_SPARSITY = 0.95
NM_TOLERANCE = 0.005


@dataclass(frozen=True)
class PruneOptions:
    """What to prune and how far; build with `PruneOptions.create` (it validates)."""

    sparsity: float
    scope: str = "local"
    max_layer_sparsity: float = DEFAULT_MAX_LAYER_SPARSITY
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    min_params: int = DEFAULT_MIN_PARAMS
    pattern: Pattern | None = None
    policy: str | PrunePolicy = "all"

    @classmethod
    def create(
        cls,
        sparsity: float | None,
        *,
        scope: str = "local",
        max_layer_sparsity: float = DEFAULT_MAX_LAYER_SPARSITY,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        min_params: int = DEFAULT_MIN_PARAMS,
        pattern: str | Pattern | None = None,
        policy: str | PrunePolicy = "all",
    ) -> PruneOptions:
        parsed = parse_pattern(pattern)
        if scope not in SCOPES:
            raise UserError(f"scope {scope!r} is not one of {', '.join(SCOPES)}")
        target = resolve_sparsity(sparsity, parsed)
        if isinstance(parsed, NMPattern) and scope != "local":
            raise UserError(
                f"pattern {parsed} fixes every layer at sparsity {parsed.fixed_sparsity:g}, so "
                f"scope {scope!r} has no meaning; use scope 'local'"
            )
        try:
            cap = float(max_layer_sparsity)
        except (TypeError, ValueError):
            raise UserError(f"max-layer-sparsity {max_layer_sparsity!r} is not a number") from None
        if not 0.0 < cap <= 1.0:
            raise UserError(f"max-layer-sparsity {max_layer_sparsity} must be in (0, 1]")
        if scope == "balanced" and cap < target:
            raise UserError(
                f"max-layer-sparsity {cap:g} is below the target sparsity {target:g}, so the "
                "target cannot be reached; raise the cap or lower the sparsity"
            )
        chosen = get_policy(policy)  # an unknown name fails here, before any model work
        if min_params == DEFAULT_MIN_PARAMS:  # left at the default: the policy may lower it
            min_params = getattr(chosen, "default_min_params", min_params)
        return cls(
            sparsity=target,
            scope=scope,
            max_layer_sparsity=cap,
            include=_globs(include),
            exclude=_globs(exclude),
            min_params=min_params,
            pattern=parsed,
            policy=policy,
        )

    @property
    def policy_name(self) -> str:
        return self.policy.name if isinstance(self.policy, PrunePolicy) else str(self.policy)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sparsity": self.sparsity,
            "scope": self.scope,
            "max_layer_sparsity": self.max_layer_sparsity,
            "include": list(self.include),
            "exclude": list(self.exclude),
            "min_params": self.min_params,
            "pattern": None if self.pattern is None else str(self.pattern),
            "policy": self.policy_name,
        }


def resolve_sparsity(sparsity: float | None, pattern: Pattern | None) -> float:
    """The target sparsity; with N:M it is fixed at 1-N/M and a contradicting value is refused."""
    if isinstance(pattern, NMPattern):
        fixed = pattern.fixed_sparsity
        check_sparsity(fixed, f"pattern {pattern} implies sparsity")
        if sparsity is not None and abs(check_sparsity(sparsity) - fixed) > NM_TOLERANCE:
            raise UserError(
                f"pattern {pattern} fixes sparsity at {fixed:.4g} but {sparsity} was asked; "
                f"pass sparsity {fixed:.4g} or leave it out"
            )
        return fixed
    if sparsity is None:
        raise UserError("no sparsity given; pass one in [0, 0.99], e.g. --sparsity 0.8")
    return check_sparsity(sparsity)


def _globs(value: Sequence[str] | str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)
