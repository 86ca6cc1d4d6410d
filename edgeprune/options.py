"""One definition of each stage's options: defaults, bounds and help text, validated once.

A stage's options are a `StageOptions` subclass (a frozen, strict pydantic model). The CLI
builds its flags from the fields (`edgeprune.cli.options.flag`), a recipe step validates its
keys against the same class, and the Python verbs take the field names as keywords, so a
default or a bound is written in one place only. Validation errors are `UserError`s that
name the parameter (`ratio`), which the CLI turns into its flag (`--ratio`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from edgeprune.errors import UserError

OptionsT = TypeVar("OptionsT", bound="StageOptions")


class StageOptions(BaseModel):
    """Base of every stage's options: no unknown names, no silent conversions, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    stage: ClassVar[str] = ""
    """The stage's name as the CLI command and the recipe step spell it."""

    @classmethod
    def create(cls: type[OptionsT], **values: Any) -> OptionsT:
        """Validated options from keywords; a bad value is one `UserError` naming it."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise options_error(exc, cls) from None

    @classmethod
    def from_parts(
        cls: type[OptionsT], options: OptionsT | None, values: Mapping[str, Any]
    ) -> OptionsT:
        """What a verb taking `options=` or keywords uses: `options`, or `create(**values)`.

        Values that are None count as not given; giving both `options` and keywords is a
        mistake (which one would win is not obvious).
        """
        given = {k: v for k, v in values.items() if v is not None}
        if options is None:
            return cls.create(**given)
        if given:
            raise UserError(
                f"{', '.join(given)}: give these inside options or as keywords, not both",
                params=tuple(given),
            )
        return options

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (what manifests, recipes' cache keys and `--json` show)."""
        return self.model_dump(mode="json")


def options_error(exc: ValidationError, cls: type[BaseModel]) -> UserError:
    """The first pydantic error as one line in parameter names: `ratio: ... (got 1.5)`."""
    first = exc.errors()[0]
    name = ".".join(str(part) for part in first["loc"]) or "options"
    param = str(first["loc"][0]) if first["loc"] else None
    if first["type"] == "extra_forbidden":
        known = ", ".join(cls.model_fields)
        return UserError(f"unknown option {name!r}; known options: {known}", params=(name,))
    message = str(first["msg"]).removeprefix("Value error, ")
    got = f" (got {first['input']!r})" if "input" in first and first["type"] != "missing" else ""
    return UserError(f"{name}: {message}{got}", params=(param,) if param else ())


STAGES: dict[str, str] = {
    "prune": "edgeprune.prune.options:PruneOptions",
    "channels": "edgeprune.channels.options:ChannelOptions",
    "adapt": "edgeprune.adapt.options:AdaptOptions",
    "xnnpack_fix": "edgeprune.xnnpack.fix_options:FixOptions",
    "qat": "edgeprune.quantize.options:QatOptions",
    "convert": "edgeprune.tflite.options:ConvertOptions",
    "evaluate": "edgeprune.tflite.options:EvaluateOptions",
    "bench": "edgeprune.fleet.options:BenchOptions",
    "deploy": "edgeprune.fleet.options:DeployOptions",
    "constraints": "edgeprune.recipes.constraints:ConstraintOptions",
    "compute": "edgeprune.compute.options:ComputeOptions",
    "quant_report": "edgeprune.tflite.options:QuantReportOptions",
}
"""Every stage's options class, by stage name (`module:Class`, imported on demand)."""


def stage_options(stage: str) -> type[StageOptions]:
    """The options class of `stage` (a key of `STAGES`)."""
    import importlib

    try:
        module, name = STAGES[stage].split(":")
    except KeyError:
        raise UserError(
            f"unknown stage {stage!r}; known stages: {', '.join(STAGES)}", params=()
        ) from None
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, StageOptions)):
        raise TypeError(f"{STAGES[stage]} is not a StageOptions subclass")
    return cls


class CustomObjectsFields(StageOptions):
    """Mixed into every stage that loads a Keras model: the user's own layers, by name."""

    custom_objects: str | None = Field(
        None,
        description="FILE.py or pkg.module whose custom layers (registered with "
        "keras.saving.register_keras_serializable, or listed in CUSTOM_OBJECTS) the model uses.",
    )


# tcp://host:port or tls://host:port; host a name, an IPv4 literal or a bracketed IPv6 one.
_ADDRESS = re.compile(
    r"^(?P<scheme>tcp|tls)://(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]+\])"
    r":(?P<port>[0-9]{1,5})$"
)


def address_problem(cluster: str) -> str | None:
    """What is wrong with `cluster` as a scheduler address (None: nothing)."""
    match = _ADDRESS.match(cluster.strip())
    if match is None or not 0 < int(match["port"]) < 65536:
        return (
            "is not a scheduler address; give tcp://HOST:PORT (what `dask scheduler` "
            "prints), e.g. tcp://10.0.0.5:8786"
        )
    return None


def _an_address(value: str) -> str:
    problem = address_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value.strip()


ClusterAddress = Annotated[str, AfterValidator(_an_address)]
"""A dask scheduler's address, checked where the option is parsed (CLI, recipe, Python)."""


def cluster_field() -> Any:
    """The one definition of `--cluster` (`cluster: ClusterAddress | None = cluster_field()`):
    `run`'s compute section and `adapt` take it alike; it lives here, below both layers."""
    return Field(
        None,
        description="Run the independent host work (a recipe's variant builds, adapt's "
        "proposals) on the workers of the Dask scheduler at this address (tcp://HOST:PORT; "
        "needs the cluster extra and the workdir on a filesystem every worker shares); "
        "default: this host.",
    )
