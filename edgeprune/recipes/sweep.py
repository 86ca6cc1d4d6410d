"""Sweep expansion: pipelines × (every step option given as a list) -> named variants.

A pipeline is an ordered mapping of steps (`prune`, `channels`, `finetune`, `convert`).
Any option given as a list is a sweep axis (for options that are lists themselves, such
as `exclude`, a list of lists); the variants of a pipeline are the product of its axes and
the recipe's variants are the union over pipelines. Each variant's options are validated
(types, ranges, policy names, patterns, data needs) before any work starts.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from edgeprune.errors import UserError
from edgeprune.recipes.schema import (
    STEP_MODELS,
    ConvertStep,
    RecipeFile,
    distill_options,
    is_list_field,
)
from edgeprune.recipes.schema import validate_part as validate
from edgeprune.recipes.yaml_source import LineIndex, PathKey

# Each variant is trained, converted and measured on every device: a typo such as a list
# of 1,000 sparsities should be refused before any work starts.
MAX_VARIANTS_PER_PIPELINE = 256
QUANTIZE_LABELS = {"none": "fp32", "float16": "fp16", "dynamic": "dyn", "int8": "int8"}
OPTION_LABELS = {"sparsity": "sp", "ratio": "ch", "threshold": "th", "epochs": "ep"}
NEEDS_DATA = {
    "adapt": "adapt fine-tunes every proposal on data.train; add data: (e.g. data: digits)",
    "finetune": "fine-tuning trains on data.train; add data: (e.g. data: digits)",
    "qat": "qat trains on data.train; add data: (e.g. data: digits)",
    "prune": "gradual pruning trains on data.train; add data: (e.g. data: digits) or use "
    "method: oneshot",
}


@dataclass(frozen=True)
class StepConfig:
    """One step of one variant: its kind, validated options, and where it was written."""

    kind: str
    options: dict[str, Any]
    path: PathKey


@dataclass
class Variant:
    """One point of the sweep: a name, the steps to make it, and the sweep values it took."""

    name: str
    pipeline: str
    steps: list[StepConfig]
    axes: dict[str, Any] = field(default_factory=dict)

    @property
    def convert(self) -> StepConfig:
        return self.steps[-1]

    @property
    def quantize(self) -> str:
        return str(self.convert.options["quantize"])

    def describe(self) -> str:
        """'prune(sparsity=0.8, policy=xnnpack) → convert(quantize=int8)' (non-default options)."""
        parts = []
        for step in self.steps:
            defaults = distill_options(STEP_MODELS[step.kind]().model_dump())
            shown = {
                k: v
                for k, v in step.options.items()
                if (v != defaults.get(k) or k == "quantize") and v is not None and v != []
            }
            parts.append(f"{step.kind}({', '.join(f'{k}={v}' for k, v in shown.items())})")
        return " → ".join(parts)


def expand_variants(spec: RecipeFile, raw: dict[str, Any], index: LineIndex) -> list[Variant]:
    """Every variant of the recipe, validated; a sweep that makes none is a UserError."""
    if spec.steps is not None and spec.pipelines is not None:
        raise index.error(("pipelines",), "give either 'steps' (one pipeline) or 'pipelines'")
    if spec.steps is None and spec.pipelines is None:
        raise index.error((), "no 'steps' or 'pipelines': nothing to sweep; add e.g. steps: {}")
    if spec.steps is not None:
        pipelines: list[tuple[str, Any, PathKey]] = [("", raw.get("steps"), ("steps",))]
    else:
        pipelines = [(str(k), v, ("pipelines", k)) for k, v in (raw["pipelines"] or {}).items()]
        if not pipelines:
            raise index.error(("pipelines",), "no pipelines: the sweep would make 0 variants")
    variants: list[Variant] = []
    for name, steps_raw, path in pipelines:
        variants.extend(_expand_pipeline(name, steps_raw, path, spec, index))
    _unique_names(variants)
    return variants


def _expand_pipeline(
    name: str, steps_raw: Any, path: PathKey, spec: RecipeFile, index: LineIndex
) -> list[Variant]:
    if name and not _is_name(name):
        raise index.error(path, "a pipeline name must be letters, digits, '.', '_' or '-'")
    if steps_raw is None:
        steps_raw = {}
    if not isinstance(steps_raw, dict):
        raise index.error(path, f"must be a mapping of steps ({', '.join(STEP_MODELS)})")
    kinds = list(steps_raw)
    for position, kind in enumerate(kinds):
        if kind not in STEP_MODELS:
            known = ", ".join(STEP_MODELS)
            raise index.error((*path, kind), f"unknown step {kind!r}; steps are: {known}", path)
        if kind == "convert" and position != len(kinds) - 1:
            raise index.error((*path, kind), "convert makes the .tflite, so it must be last")
    if "convert" not in kinds:
        steps_raw = {**steps_raw, "convert": {}}
        kinds.append("convert")

    axes: list[tuple[str, str, PathKey, list[Any]]] = []  # (kind, option, path, values)
    for kind in kinds:
        options = steps_raw[kind]
        step_path = (*path, kind)
        if options is None:
            continue
        if not isinstance(options, dict):
            raise index.error(step_path, f"step {kind!r} takes a mapping of options (or nothing)")
        model = STEP_MODELS[kind]
        for option, value in options.items():
            if option not in model.model_fields or not isinstance(value, list):
                continue
            if is_list_field(model, option) and not all(isinstance(v, list) for v in value):
                continue  # a plain list value, not a sweep over lists
            if not value:
                raise index.error(
                    (*step_path, option),
                    "an empty list makes 0 variants; give at least one value",
                )
            if len(value) > MAX_VARIANTS_PER_PIPELINE:
                raise index.error(
                    (*step_path, option),
                    f"{len(value):,} sweep values; at most {MAX_VARIANTS_PER_PIPELINE} per list",
                )
            _no_repeats(value, (*step_path, option), index)
            axes.append((kind, option, (*step_path, option), value))

    count = math.prod(len(values) for *_, values in axes)
    if count > MAX_VARIANTS_PER_PIPELINE:
        raise index.error(
            path,
            f"the sweep makes {count:,} variants (the product of its lists); at most "
            f"{MAX_VARIANTS_PER_PIPELINE} per pipeline: shorten the lists or split the recipe",
        )

    variants = []
    for combo in itertools.product(*(range(len(values)) for *_, values in axes)):
        chosen = {
            (kind, option): (values[i], (*p, i))
            for (kind, option, p, values), i in zip(axes, combo, strict=True)
        }
        steps = [
            _step(kind, steps_raw[kind] or {}, (*path, kind), chosen, spec, index) for kind in kinds
        ]
        axis_values = {f"{k}.{o}": chosen[(k, o)][0] for k, o, *_ in axes}
        variants.append(Variant(_name(name, axes, axis_values, steps), name, steps, axis_values))
    return variants


def _no_repeats(values: list[Any], path: PathKey, index: LineIndex) -> None:
    """The same sweep value twice would build and measure the same variant twice."""
    seen: list[Any] = []
    for position, value in enumerate(values):
        if value in seen:
            raise index.error(
                (*path, position), f"{value!r} is listed twice; each sweep value once", path
            )
        seen.append(value)


def _step(
    kind: str,
    options: dict[str, Any],
    path: PathKey,
    chosen: dict[tuple[str, str], tuple[Any, PathKey]],
    spec: RecipeFile,
    index: LineIndex,
) -> StepConfig:
    concrete = dict(options)
    rename: dict[str, PathKey] = {}
    for (step_kind, option), (value, value_path) in chosen.items():
        if step_kind == kind:
            concrete[option] = value
            rename[option] = value_path
    model = validate(STEP_MODELS[kind], concrete, index, path, rename)
    values = distill_options(model.model_dump())
    if kind == "convert" and values["sparse_weights"] == "auto":
        values["sparse_weights"] = None  # 'auto' is the recipe's spelling of "unset"
    needs = NEEDS_DATA.get(kind)
    if needs and spec.data is None and not (kind == "prune" and values["method"] == "oneshot"):
        raise index.error(path, needs)
    try:
        _check_step(kind, values, spec)
    except UserError as exc:
        culprit = next((p for p in exc.params if p in values), None) or _option_named(
            str(exc), values
        )
        where = rename.get(culprit) if culprit else None
        raise index.error(
            where or (path if culprit is None else (*path, culprit)), str(exc)
        ) from None
    return StepConfig(kind, values, path)


def _check_step(kind: str, values: dict[str, Any], spec: RecipeFile) -> None:
    """What the library would refuse later, refused now (same checks, same messages)."""
    has_data = spec.data is not None
    if kind == "prune":
        from edgeprune.prune.options import SELECTION, PruneOptions

        if values["method"] == "gradual" and spec.data is not None:
            options = {k: v for k, v in values.items() if k != "method"}
            PruneOptions.create(**options, data=spec.data.train)
        else:
            PruneOptions.create(**{k: values[k] for k in SELECTION})
        if values["max_layer_sparsity"] is not None and values["scope"] != "balanced":
            raise UserError(
                "max_layer_sparsity applies to scope balanced only",
                params=("max_layer_sparsity", "scope"),
            )
    elif kind == "channels":
        from edgeprune.channels.options import ChannelOptions

        ChannelOptions.create(**values)
    elif kind == "adapt":
        from edgeprune.adapt.options import AdaptOptions

        AdaptOptions.create(**values)
    elif kind == "xnnpack_fix":
        from edgeprune.xnnpack.fix_options import FixOptions

        FixOptions.create(**values)
    elif kind == "convert":
        from edgeprune.tflite.conversion import check_options as check_convert

        check_convert(
            values["quantize"],
            values["io"],
            has_data,
            values["calibration_samples"],
            values.get("keep_float"),
        )


def _option_named(message: str, values: dict[str, Any]) -> str | None:
    """The option a library message is about ('sparsity 1.5 must...' -> 'sparsity')."""
    lowered = message.lower().replace("-", "_")
    for option in sorted(values, key=len, reverse=True):
        if option in lowered:
            return option
    return None


def _name(
    pipeline: str,
    axes: list[tuple[str, str, PathKey, list[Any]]],
    axis_values: dict[str, Any],
    steps: list[StepConfig],
) -> str:
    parts = [pipeline] if pipeline else []
    quantize_swept = False
    for kind, option, *_ in axes:
        value = axis_values[f"{kind}.{option}"]
        if kind == "convert" and option == "quantize":
            quantize_swept = True
            parts.append(QUANTIZE_LABELS[value])
        else:
            parts.append(_label(option, value))
    if not quantize_swept:
        parts.append(QUANTIZE_LABELS[steps[-1].options["quantize"]])
    return "-".join(parts)


def _label(option: str, value: Any) -> str:
    if isinstance(value, bool):
        return option if value else f"no_{option}"
    if isinstance(value, dict):  # distill: {temperature: 2, alpha: 0.5} -> distill_t2_a0.5
        value = "_" + "_".join(f"{k[0]}{v:g}" for k, v in value.items())
    elif isinstance(value, list):
        value = "+".join(str(v) for v in value)
    elif isinstance(value, float):
        value = f"{value:g}"
    text = f"{OPTION_LABELS.get(option, option)}{value}"
    return "".join(c if c.isalnum() or c in "._+" else "_" for c in text)


def _unique_names(variants: list[Variant]) -> None:
    seen: dict[str, int] = {}
    for variant in variants:
        count = seen.get(variant.name, 0) + 1
        seen[variant.name] = count
        if count > 1:
            variant.name = f"{variant.name}-{count}"


def _is_name(text: str) -> bool:
    import re

    return re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,40}$", text) is not None


__all__ = ["ConvertStep", "StepConfig", "Variant", "expand_variants"]
