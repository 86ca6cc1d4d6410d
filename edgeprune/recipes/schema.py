"""The recipe file's shape: pydantic models, strict types, no unknown keys.

Validation errors become one-line `UserError`s that start with ``file:line`` and the dotted
path of the key at fault (see `yaml_source.LineIndex`). Step options (`prune`,
`channels`, `finetune`, `convert`) are validated per variant in `sweep.py`, because any of
them may be a list that the sweep expands.
"""

from __future__ import annotations

import copy
import difflib
import types
import typing
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    create_model,
)

from edgeprune.adapt.options import ADAPT_QUANTIZE, AdaptOptions
from edgeprune.channels.criteria import CRITERIA, EQUALIZATIONS, NORMALIZERS
from edgeprune.channels.options import FINETUNE as CHANNEL_FINETUNE
from edgeprune.channels.options import SELECTION as CHANNEL_SELECTION
from edgeprune.channels.options import ChannelOptions
from edgeprune.compute.options import ComputeOptions
from edgeprune.fleet.options import BenchOptions, DeployOptions
from edgeprune.options import StageOptions
from edgeprune.prune.masks import SCOPES
from edgeprune.prune.options import PruneOptions
from edgeprune.prune.rates import DECAYS
from edgeprune.quantize.options import QatOptions
from edgeprune.recipes.constraints import ConstraintOptions
from edgeprune.recipes.yaml_source import LineIndex, PathKey
from edgeprune.tasks.base import TASK_NAMES
from edgeprune.tasks.options import DistillFields, TaskFields
from edgeprune.tflite.options import IO_TYPES, QUANTIZE_MODES, ConvertOptions
from edgeprune.xnnpack.fix_options import FixOptions
from edgeprune.yaml_budget import echo

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"


class _Strict(BaseModel):
    """No unknown keys, no silent conversions ('0.5' is not a number)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class TrainSpec(_Strict):
    """Train the base model on `data.train` before the sweep (from scratch for demo/application)."""

    epochs: int = Field(ge=1, le=100_000)
    batch_size: int = Field(64, ge=1, le=1_000_000)
    learning_rate: float = Field(1e-3, gt=0, lt=10)
    seed: int = Field(0, ge=0)


class ModelSpec(_Strict):
    """Exactly one source: the digits `demo` CNN, a model `file`, or a keras.applications name."""

    demo: bool = False
    width: int | None = Field(None, ge=1, le=4096)
    file: str | None = None
    application: str | None = Field(None, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    weights: str | None = None
    input_shape: list[int] | None = Field(None, min_length=1, max_length=4)
    classes: int | None = Field(None, ge=1)
    options: dict[str, Any] = Field(default_factory=dict)
    train: TrainSpec | None = None
    seed: int = Field(0, ge=0)


class DataSpec(_Strict):
    """Dataset specs (`digits`, an .npz, an image folder); paths are relative to the recipe."""

    train: str = Field(min_length=1)
    validation: str | None = None
    calibration: str | None = None
    calibration_samples: int = Field(200, ge=1, le=100_000)
    image_size: list[int] | None = Field(None, min_length=2, max_length=2)


def _fields_of(options: type[BaseModel], *leave_out: str) -> dict[str, Any]:
    """A stage's option fields (defaults, bounds, help) to build a recipe section from."""
    return {
        name: (info.annotation, info)
        for name, info in options.model_fields.items()
        if name not in leave_out
    }


def _bench_spec() -> type[_Strict]:
    """`bench:`: every field of the bench stage's `BenchOptions` (same defaults, bounds and
    help), except the device-side inputs name, plus the recipe-only `inputs: bool`."""
    fields = _fields_of(BenchOptions, "inputs")
    fields["inputs"] = (
        bool,
        Field(True, description="Ship the validation samples: accuracy measured on the device."),
    )
    return create_model(
        "BenchSpec",
        __base__=_Strict,
        __doc__="Bench options (as `edgeprune.fleet.options.BenchOptions`) plus whether to ship inputs.",
        **fields,
    )


BenchSpec = _bench_spec()

DeploySpec = create_model(
    "DeploySpec",
    __base__=_Strict,
    __doc__="`deploy:`: how the devices are worked on (as `edgeprune.fleet.options.DeployOptions`).",
    **_fields_of(DeployOptions),
)


DeviceConstraintsSpec = create_model(
    "DeviceConstraintsSpec",
    __base__=_Strict,
    __doc__="One device's (or tag's) limits, over the global ones (as `ConstraintOptions`).",
    **_fields_of(ConstraintOptions),
)


ConstraintsSpec = create_model(
    "ConstraintsSpec",
    __base__=_Strict,
    __doc__="`constraints:`: global limits (as `edgeprune.recipes.constraints.ConstraintOptions`) "
    "and, under `devices:`, limits per device name or tag that replace them field by field.",
    **_fields_of(ConstraintOptions),
    devices=(dict[str, DeviceConstraintsSpec], Field(default_factory=dict)),  # type: ignore[valid-type]
)


ComputeSpec = create_model(
    "ComputeSpec",
    __base__=_Strict,
    __doc__="`compute:`: where the host stages are built (as `edgeprune.compute.options.ComputeOptions`).",
    **_fields_of(ComputeOptions),
)


class RecipeFile(_Strict):
    """The whole file. Give `steps` (one pipeline) or `pipelines` (name -> steps)."""

    name: str | None = Field(None, pattern=NAME_PATTERN)
    description: str | None = None
    workdir: str | None = None
    model: ModelSpec
    data: DataSpec | None = None
    steps: dict[str, Any] | None = None
    pipelines: dict[str, Any] | None = None
    devices: list[str] = Field(default_factory=lambda: ["local"], min_length=1)
    mlflow: str | None = Field(
        None, description="Also log every variant × device to this MLflow tracking URI."
    )
    inventory: str | None = None
    custom_objects: str | None = Field(
        None,
        description="FILE.py (relative to the recipe) or pkg.module with the model's custom "
        "layers; every step that loads a Keras model uses it.",
    )
    # Both are built by create_model from the fleet's options, which mypy cannot follow.
    bench: BenchSpec = Field(default_factory=BenchSpec)  # type: ignore[valid-type]
    deploy: DeploySpec = Field(default_factory=DeploySpec)  # type: ignore[valid-type]
    accuracy_budget: float | None = Field(1.0, ge=0, le=100)
    # What the model does and which metric decides (checked in `recipes.metric`).
    task: Literal[TASK_NAMES] | None = Field(  # type: ignore[valid-type]
        None, description=TaskFields.model_fields["task"].description
    )
    metric: str | None = Field(
        None,
        description="Which metric decides (default the task's first: top1, rmse, miou, map50; "
        "for task custom a key of metric_fn's dict).",
    )
    direction: Literal["higher", "lower"] | None = Field(
        None, description="Whether higher or lower is better (needed for a custom metric)."
    )
    metric_fn: str | None = Field(None, description=TaskFields.model_fields["metric"].description)
    decode: str | None = Field(None, description=TaskFields.model_fields["decode"].description)
    budget: float | str | None = Field(
        None,
        description="How much of the metric a variant may lose: a number in its units (points "
        "for fractions) or a percent of the baseline (2%). Default 1 point, or 1 % for values.",
    )
    constraints: ConstraintsSpec = Field(default_factory=ConstraintsSpec)  # type: ignore[valid-type]
    compute: ComputeSpec = Field(default_factory=ComputeSpec)  # type: ignore[valid-type]


# ---------------------------------------------------------------- step options


def step_model(
    name: str,
    options: type[StageOptions],
    keys: Sequence[str],
    doc: str,
    *,
    first: dict[str, tuple[Any, Any]] | None = None,
    types: dict[str, Any] | None = None,
) -> type[_Strict]:
    """A recipe step made of `keys` of a stage's options class: the same defaults, bounds
    and help text. `first` adds recipe-only keys in front; `types` spells a key as YAML
    gives it (a list where the options keep a tuple, a closed set of names as a Literal).
    Cross-field rules are the options class's own, checked per variant in `sweep.py`."""
    fields: dict[str, Any] = dict(first or {})
    for key in keys:
        if key in DISTILL_SHAPE:
            continue  # under `distill: {temperature, alpha}`
        info = copy.copy(options.model_fields[key])
        annotation = (types or {}).get(key, info.annotation)
        if key == "distill":
            annotation = DISTILL_VALUE
        fields[key] = (annotation, info)
    model = create_model(name, __base__=_Strict, __doc__=doc, **fields)
    return model


DISTILL_SHAPE = ("temperature", "alpha")
"""DistillFields that a recipe writes under its step's `distill:` mapping."""

DistillSpec = create_model(
    "DistillSpec",
    __base__=_Strict,
    __doc__="`distill: {temperature, alpha}`: distil from the model before the step "
    "(as `edgeprune.tasks.options.DistillFields`); `distill: true` takes the defaults.",
    **_fields_of(DistillFields, *(n for n in DistillFields.model_fields if n not in DISTILL_SHAPE)),
)


DISTILL_TAG = "distill:"
"""The union tag of `distill`'s mapping form; errors leave it out of their paths."""

DISTILL_VALUE = Annotated[
    Annotated[DistillSpec, Tag(DISTILL_TAG)] | Annotated[bool, Tag("flag")],
    Discriminator(lambda v: DISTILL_TAG if isinstance(v, dict | BaseModel) else "flag"),
]
"""`distill: true | false | {temperature, alpha}`: a mapping is checked as a DistillSpec."""


def distill_options(values: dict[str, Any]) -> dict[str, Any]:
    """A step's values with `distill: true | {temperature, alpha}` as the stage's
    DistillFields (distill, temperature, alpha): the one place the recipe spelling maps."""
    if "distill" not in values:
        return values
    out = dict(values)
    given = out.pop("distill")
    shape = given if isinstance(given, dict) else {}
    if isinstance(given, BaseModel):
        shape = given.model_dump()
    defaults = DistillFields()
    out["distill"] = bool(given) if not isinstance(given, dict | BaseModel) else True
    for name in DISTILL_SHAPE:
        out[name] = shape.get(name, getattr(defaults, name))
    return out


TASK_KEYS = tuple(TaskFields.model_fields)
"""task, metric, decode: a recipe names its task once, at the top, for every stage."""

PruneStep = step_model(
    "PruneStep",
    PruneOptions,
    [k for k in PruneOptions.model_fields if k not in ("data", "custom_objects", *TASK_KEYS)],
    "Unstructured magnitude pruning; `gradual` fine-tunes on data.train while pruning.",
    first={"method": (Literal["gradual", "oneshot"], "gradual")},
    types={
        "scope": Literal[SCOPES],
        "policy": str,
        "pattern": str | None,
        "schedule": Literal["polynomial", "constant"],
    },
)

ChannelsStep = step_model(
    "ChannelsStep",
    ChannelOptions,
    CHANNEL_SELECTION,
    "Structured filter pruning (TAO's options); give `ratio` or `threshold`.",
    types={
        "criterion": Literal[CRITERIA],
        "normalizer": Literal[NORMALIZERS],
        "equalization": Literal[EQUALIZATIONS],
    },
)

FinetuneStep = step_model(
    "FinetuneStep",
    ChannelOptions,
    CHANNEL_FINETUNE,
    "Train the model on data.train; zeros left by an earlier prune step stay zero.",
    types={"learning_rate_decay": Literal[DECAYS]},
)

ConvertStep = step_model(
    "ConvertStep",
    ConvertOptions,
    [k for k in ConvertOptions.model_fields if k not in ("data", "custom_objects", *TASK_KEYS)],
    "TFLite conversion; `sparse_weights: auto` (or unset) stores weights sparse when >= 50 % zero.",
    types={
        "quantize": Literal[QUANTIZE_MODES],
        "sparse_weights": bool | Literal["auto"] | None,
        "io": Literal[IO_TYPES],
    },
)

QatStep = step_model(
    "QatStep",
    QatOptions,
    [k for k in QatOptions.model_fields if k not in ("data", "custom_objects", *TASK_KEYS)],
    "Quantization-aware fine-tune on data.train (zeros kept); the convert step after it "
    "should use quantize: int8, which then takes the ranges QAT learned.",
)


XnnpackFixStep = step_model(
    "XnnpackFixStep",
    FixOptions,
    [k for k in FixOptions.model_fields if k not in ("data", "custom_objects")],
    "Rewrite asymmetric stride-2 padding so XNNPACK's sparse path can take the model "
    "(put it before a prune step with policy xnnpack); outputs are compared on data's "
    "validation samples when the recipe has data, else on seeded noise.",
)


AdaptStep = step_model(
    "AdaptStep",
    AdaptOptions,
    [k for k in AdaptOptions.model_fields if k not in ("data", "custom_objects", *TASK_KEYS)],
    "NetAdapt: remove filters until the model meets a latency target measured on `device` "
    "(give target_latency or target_speedup); fine-tunes on data.train.",
    types={
        "quantize": Literal[ADAPT_QUANTIZE],
        "criterion": Literal[CRITERIA],
        "learning_rate_decay": Literal[DECAYS],
    },
)


STEP_MODELS: dict[str, type[_Strict]] = {
    "xnnpack_fix": XnnpackFixStep,
    "prune": PruneStep,
    "channels": ChannelsStep,
    "finetune": FinetuneStep,
    "qat": QatStep,
    "adapt": AdaptStep,
    "convert": ConvertStep,
}

RECIPE_ONLY: dict[str, tuple[str, ...]] = {"prune": ("method",)}
"""Step keys that are not options of the stage (how the recipe runs it)."""


def is_list_field(model: type[BaseModel], name: str) -> bool:
    """Whether the option itself is a list (then a sweep over it is a list of lists)."""
    annotation = model.model_fields[name].annotation
    return any(typing.get_origin(m) in (list, tuple) for m in _union_members(annotation))


def _union_members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) is Annotated:  # a tagged union (distill)
        return _union_members(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(
            typing.get_args(m)[0] if typing.get_origin(m) is Annotated else m
            for m in typing.get_args(annotation)
        )
    return (annotation,)


# ---------------------------------------------------------------- errors


def validate_part(
    model: type[BaseModel],
    raw: Any,
    index: LineIndex,
    base: PathKey = (),
    rename: dict[str, PathKey] | None = None,
) -> Any:
    """`model.model_validate(raw)`, with a failure turned into a file:line UserError.

    `rename` maps a top-level option name to the path it really came from (a sweep value
    `sparsity[1]` is validated as plain `sparsity`).
    """
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise _user_error(exc, model, raw, index, base, rename or {}) from None


def _user_error(
    exc: ValidationError,
    model: type[BaseModel],
    raw: Any,
    index: LineIndex,
    base: PathKey,
    rename: dict[str, PathKey],
) -> Exception:
    errors = exc.errors()
    for error in errors:  # a tagged union's tag is no key of the file
        error["loc"] = tuple(part for part in error["loc"] if part != DISTILL_TAG)
    first = errors[0]
    loc = _existing_path(raw, first["loc"]) if first["type"] != "missing" else tuple(first["loc"])
    if first["type"] == "extra_forbidden":
        loc = tuple(first["loc"])
    real = _real_path(base, loc, rename)
    if first["type"] == "extra_forbidden":
        known = list(_model_at(model, loc[:-1]).model_fields)
        key = str(loc[-1])
        hint = difflib.get_close_matches(key, known, n=1)
        maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
        message = f"unknown key {echo(key)}{maybe}; known keys: {', '.join(known)}"
        return index.error(real, message, shown=real[:-1])
    if first["type"] == "missing":
        parent = _real_path(base, loc[:-1], rename)
        return index.error(parent, f"required key {str(loc[-1])!r} is missing")
    same = [e for e in errors if _existing_path(raw, e["loc"]) == loc]
    messages = list(dict.fromkeys(_short(e["msg"]) for e in same))
    shown = " or ".join(messages)
    if all(e["msg"].startswith("Input should be ") for e in same):
        shown = "should be " + shown
    return index.error(real, f"{shown} (got {echo(first.get('input'))})")


def _short(message: str) -> str:
    """'Input should be a valid number' -> 'a valid number' (the caller adds 'should be')."""
    message = message.removeprefix("Value error, ")
    return message.removeprefix("Input should be ")


def _existing_path(raw: Any, loc: tuple[Any, ...]) -> PathKey:
    """The longest prefix of a pydantic `loc` that exists in the data (drops union tags)."""
    out: list[Any] = []
    node = raw
    for part in loc:
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            node = node[part]
        else:
            break
        out.append(part)
    return tuple(out)


def _real_path(base: PathKey, loc: PathKey, rename: dict[str, PathKey]) -> PathKey:
    if loc and isinstance(loc[0], str) and loc[0] in rename:
        return (*rename[loc[0]], *loc[1:])
    return (*base, *loc)


def _model_at(model: type[BaseModel], path: PathKey) -> type[BaseModel]:
    """The nested model class at `path` (for listing its known keys)."""
    current = model
    for part in path:
        field = current.model_fields.get(str(part))
        if field is None:
            return current
        nested = [
            m
            for m in _union_members(field.annotation)
            if isinstance(m, type) and issubclass(m, BaseModel)
        ]
        if not nested:
            return current
        current = nested[0]
    return current
