"""Every pruning option, one-shot and gradual, defined and validated once: `PruneOptions`.

The CLI's flags, the recipe's `prune` step and the Python verbs (`prune_model`,
`prune_gradually`, `prune_model_file`) all take these fields, so a default, a bound or a
help text lives here only. Errors name the parameter (`max_layer_sparsity`); the CLI shows
the flag (`--max-layer-sparsity`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import ConfigDict, Field, PrivateAttr, field_serializer, model_validator

from edgeprune.errors import UserError
from edgeprune.files import check_log_dir
from edgeprune.options import CustomObjectsFields, StageOptions
from edgeprune.prune.masks import SCOPES
from edgeprune.prune.patterns import NMPattern, Pattern, parse_pattern
from edgeprune.prune.policy import PrunePolicy, get_policy
from edgeprune.prune.rates import (
    DISTILL_LEARNING_RATE,
    LEARNING_RATE,
    check_decay,
    default_decay,
    default_learning_rate,
)
from edgeprune.prune.schedules import SCHEDULES, check_sparsity
from edgeprune.prune.selection import DEFAULT_MIN_PARAMS, layer_types
from edgeprune.tasks.options import DistillFields, LossFields, TaskFields

DEFAULT_MAX_LAYER_SPARSITY = 0.95
NM_TOLERANCE = 0.005


GRADUAL_ONLY = (
    "epochs",
    "schedule",
    "begin_step",
    "end_step",
    "frequency",
    "initial_sparsity",
    "power",
    "batch_size",
    "learning_rate",
    "learning_rate_decay",
    "seed",
    "tensorboard",
    "task",
    "metric",
    "decode",
    "loss",
    "distill",
    "temperature",
    "alpha",
)
"""Options that shape fine-tuning, so they mean something only with a dataset."""

DEPENDS_ON_DISTILL = ("learning_rate", "learning_rate_decay")
"""Options whose default depends on `distill` (`prune.rates`), resolved at validation."""

SELECTION = (
    "sparsity",
    "scope",
    "max_layer_sparsity",
    "include",
    "exclude",
    "include_types",
    "min_params",
    "pattern",
    "policy",
)
"""Options that say which weights go: all a one-shot prune needs."""


class PruneOptions(TaskFields, LossFields, DistillFields, CustomObjectsFields):
    """What to prune, how far, and (with `data`) how to fine-tune while pruning.

    Build with `PruneOptions.create(sparsity, scope=...)`; after validation `sparsity` is
    the target (fixed by an N:M pattern), `max_layer_sparsity` the cap, `pattern` a parsed
    pattern and `min_params` the one the policy calls for when left at the default.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    stage = "prune"

    sparsity: float | None = Field(
        None,
        description="Target fraction of zeros in [0, 0.99]; may be left out with --pattern N:M.",
    )
    scope: str = Field(
        "local", description="local (every layer at S) | global (one threshold) | balanced."
    )
    max_layer_sparsity: float | None = Field(
        None, description="Cap per layer for --scope balanced (default 0.95)."
    )
    policy: Any = Field(
        "all",
        description="Which layers may be pruned: all | xnnpack (1x1 convs of XNNPACK sparse clusters).",
    )
    pattern: Any = Field(
        None, description="N:M (e.g. 2:4, along input channels) or block:RxC (e.g. block:4x1)."
    )
    include: list[str] = Field(
        default_factory=list, description="Prune only layers matching this glob (repeatable)."
    )
    exclude: list[str] = Field(
        default_factory=list, description="Never prune layers matching this glob (repeatable)."
    )
    include_types: list[str] = Field(
        default_factory=list,
        description="Prune only layers of this Keras type, e.g. Conv2D (repeatable).",
    )
    min_params: int = Field(
        DEFAULT_MIN_PARAMS,
        ge=0,
        description="Skip kernels with fewer weights (0 with --policy xnnpack).",
    )
    data: str | None = Field(
        None, description="Dataset for gradual pruning: digits, an .npz or an image folder."
    )
    schedule: str = Field("polynomial", description="constant | polynomial (default polynomial).")
    begin_step: int = Field(0, ge=0, description="First pruning step (default 0).")
    end_step: int | None = Field(
        None, ge=1, description="Last pruning step (default: half of training)."
    )
    frequency: int | None = Field(
        None, ge=1, description="Steps between mask updates (default: about 20 updates)."
    )
    initial_sparsity: float = Field(
        0.0, ge=0, lt=1, description="Sparsity at begin-step (polynomial, default 0)."
    )
    power: float = Field(3.0, gt=0, description="Polynomial ramp exponent (default 3).")
    epochs: int = Field(8, ge=1, le=100_000, description="Fine-tuning epochs (default 8).")
    batch_size: int = Field(32, ge=1, description="Batch size (default 32).")
    learning_rate: float | None = Field(
        None,
        gt=0,
        lt=10,
        description=f"Adam learning rate (default {LEARNING_RATE:g}; "
        f"{DISTILL_LEARNING_RATE:g} with --distill).",
    )
    learning_rate_decay: str | None = Field(
        None,
        description="constant | cosine: from the end of the ramp the rate falls to 0 by the "
        "last step (default constant; cosine with --distill).",
    )
    seed: int = Field(0, ge=0, description="Random seed of fine-tuning (default 0).")
    tensorboard: str | None = Field(
        None,
        description="TensorBoard log dir: loss, metrics, per-layer sparsity and threshold per "
        "step (gradual only).",
    )

    _given: frozenset[str] = PrivateAttr(default=frozenset())
    _defaulted: frozenset[str] = PrivateAttr(default=frozenset())

    @classmethod
    def create(cls, *args: Any, **values: Any) -> PruneOptions:  # type: ignore[override]
        """Validated options; `sparsity` may come first as a positional value."""
        if len(args) > 1:
            raise TypeError("PruneOptions.create takes sparsity as its only positional argument")
        if args:
            values["sparsity"] = args[0]
        return super().create(**values)

    @model_validator(mode="wrap")
    @classmethod
    def _validate(cls, data: Any, handler: Any) -> Any:
        if isinstance(data, PruneOptions):
            return data
        if not isinstance(data, dict):
            return handler(data)
        if set(data) - set(cls.model_fields):
            return handler(data)  # pydantic names the unknown option
        given = frozenset(data)
        resolved = cls._resolve(dict(data))
        self = handler(resolved)
        self._check_training(frozenset(k for k in given if _changed(cls, k, data[k], resolved)))
        self._given = given
        self._defaulted = frozenset(name for name in DEPENDS_ON_DISTILL if data.get(name) is None)
        return self

    @classmethod
    def _resolve(cls, data: dict[str, Any]) -> dict[str, Any]:
        """The selection checks and the values they settle, in today's words and order."""
        scope = data.get("scope", "local")
        parsed = parse_pattern(data.get("pattern"))
        if scope not in SCOPES:
            raise UserError(f"scope {scope!r} is not one of {', '.join(SCOPES)}", params=("scope",))
        target = resolve_sparsity(data.get("sparsity"), parsed)
        if isinstance(parsed, NMPattern) and scope != "local":
            raise UserError(
                f"pattern {parsed} fixes every layer at sparsity {parsed.fixed_sparsity:g}, so "
                f"scope {scope!r} has no meaning; use scope 'local'",
                params=("scope",),
            )
        raw_cap = data.get("max_layer_sparsity")
        raw_cap = DEFAULT_MAX_LAYER_SPARSITY if raw_cap is None else raw_cap
        if isinstance(raw_cap, bool):
            raw_cap = str(raw_cap)
        try:
            cap = float(raw_cap)
        except (TypeError, ValueError):
            raise UserError(
                f"max_layer_sparsity {raw_cap!r} is not a number", params=("max_layer_sparsity",)
            ) from None
        if not 0.0 < cap <= 1.0:
            raise UserError(
                f"max_layer_sparsity {raw_cap} must be in (0, 1]", params=("max_layer_sparsity",)
            )
        if scope == "balanced" and cap < target:
            raise UserError(
                f"max_layer_sparsity {cap:g} is below the target sparsity {target:g}, so the "
                "target cannot be reached; raise the cap or lower the sparsity",
                params=("max_layer_sparsity",),
            )
        policy = data.get("policy", "all")
        chosen = get_policy(policy)  # an unknown name fails here, before any model work
        min_params = data.get("min_params", DEFAULT_MIN_PARAMS)
        if min_params == DEFAULT_MIN_PARAMS and not isinstance(min_params, bool):
            min_params = getattr(chosen, "default_min_params", min_params)
        check_log_dir(data.get("tensorboard"))
        distill = bool(data.get("distill"))
        if data.get("learning_rate") is None:
            data["learning_rate"] = default_learning_rate(distill)
        decay = data.get("learning_rate_decay")
        data["learning_rate_decay"] = (
            default_decay(distill) if decay is None else check_decay(decay)
        )
        data.update(
            sparsity=target,
            max_layer_sparsity=cap,
            pattern=parsed,
            min_params=min_params,
            include=_globs(data.get("include")),
            exclude=_globs(data.get("exclude")),
            include_types=layer_types(_globs(data.get("include_types"))),
        )
        return data

    def _check_training(self, given: frozenset[str]) -> None:
        """Gradual-only options need a dataset; the schedule's options must fit together.

        `given` are the options set to other than their default, so options read back
        from `to_dict()` validate again.
        """
        if not self.trains():
            extra = [name for name in GRADUAL_ONLY if name in given]
            if extra:
                raise self._without_data(extra)
            return
        if self.schedule not in SCHEDULES:
            raise UserError(
                f"schedule {self.schedule!r} is not one of {', '.join(SCHEDULES)}",
                params=("schedule",),
            )
        if self.schedule == "constant":
            shaped = [n for n in ("initial_sparsity", "power") if n in given]
            if shaped:
                raise UserError(
                    f"{', '.join(shaped)} shape the polynomial schedule only; "
                    "drop them or use the polynomial schedule",
                    params=tuple(shaped),
                )
        if self.end_step is not None and self.end_step <= self.begin_step:
            raise UserError(
                f"end_step {self.end_step} must be greater than begin_step {self.begin_step}",
                params=("end_step", "begin_step"),
            )

    def trains(self) -> bool:
        """Whether these options fine-tune while pruning (they name a dataset)."""
        return self.data is not None

    def _without_data(self, names: Sequence[str]) -> UserError:
        return UserError(
            f"{', '.join(names)}: only for gradual pruning, which needs data DATASET; "
            "add data or leave them out for one-shot pruning",
            params=(*names, "data"),
        )

    @field_serializer(*DEPENDS_ON_DISTILL)
    def _unset_stays_unset(self, value: Any, info: Any) -> Any:
        """A rate the caller left unset is written unset, so options passed on (`ep.prune(...,
        options=..., distill=True)`) still take the defaults of the `distill` they end with."""
        return None if info.field_name in self._defaulted else value

    @field_serializer("pattern")
    def _pattern_text(self, value: Any) -> str | None:
        return None if value is None else str(value)

    @field_serializer("policy")
    def _policy_text(self, value: Any) -> str:
        return value.name if isinstance(value, PrunePolicy) else str(value)

    @property
    def target(self) -> float:
        """The target sparsity after validation (an N:M pattern fixes it)."""
        if self.sparsity is None:
            raise ValueError("PruneOptions built without validation: no target sparsity")
        return self.sparsity

    @property
    def cap(self) -> float:
        """The per-layer sparsity cap after validation (its default filled in)."""
        if self.max_layer_sparsity is None:
            raise ValueError("PruneOptions built without validation: no max_layer_sparsity")
        return self.max_layer_sparsity

    @property
    def given(self) -> frozenset[str]:
        """The option names the caller set (the rest are defaults)."""
        return self._given

    @property
    def policy_name(self) -> str:
        return self.policy.name if isinstance(self.policy, PrunePolicy) else str(self.policy)

    def selection_dict(self) -> dict[str, Any]:
        """The selection options as manifests record them."""
        return {name: value for name, value in self.to_dict().items() if name in SELECTION}

    def training_keywords(self) -> dict[str, Any]:
        """The gradual-only options, as `prune_gradually` takes them."""
        return {name: getattr(self, name) for name in GRADUAL_ONLY}


def resolve_sparsity(sparsity: float | None, pattern: Pattern | None) -> float:
    """The target sparsity; with N:M it is fixed at 1-N/M and a contradicting value is refused."""
    if isinstance(pattern, NMPattern):
        fixed = pattern.fixed_sparsity
        check_sparsity(fixed, f"pattern {pattern} implies sparsity")
        if sparsity is not None and abs(check_sparsity(sparsity) - fixed) > NM_TOLERANCE:
            raise UserError(
                f"pattern {pattern} fixes sparsity at {fixed:.4g} but {sparsity} was asked; "
                f"pass sparsity {fixed:.4g} or leave it out",
            )
        return fixed
    if sparsity is None:
        raise UserError(
            "no sparsity given; pass `sparsity` in [0, 0.99], e.g. `sparsity` 0.8",
            params=("sparsity",),
        )
    return check_sparsity(sparsity)


def _changed(cls: type[StageOptions], name: str, value: Any, resolved: dict[str, Any]) -> bool:
    """Whether `value` differs from the default of field `name` (the learning rate's and
    its decay's defaults depend on `distill`, as `resolved` settles it)."""
    distill = bool(resolved.get("distill"))
    if name == "learning_rate":
        return value is not None and value != default_learning_rate(distill)
    if name == "learning_rate_decay":
        return value is not None and value != default_decay(distill)
    return value != cls.model_fields[name].get_default(call_default_factory=True)


def _globs(value: Iterable[str] | str | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)
