"""`load_recipe(path) -> Recipe`: the one entry point that reads and checks a recipe file.

Everything that can be checked without TensorFlow, devices or data files is checked here,
and every failure is a `UserError` naming the file and line. This is also the hook for
property tests over the loader: any input must give a Recipe or a UserError, never
another exception.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeprune.errors import UserError
from edgeprune.recipes.metric import TOP1, Decision, decision_of
from edgeprune.recipes.schema import RecipeFile, validate_part
from edgeprune.recipes.sweep import Variant, expand_variants
from edgeprune.recipes.yaml_source import LineIndex, load_yaml_with_lines, parse_yaml_with_lines
from edgeprune.yaml_budget import echo

BUILTIN_DATASETS = ("digits",)
DEFAULT_WORKDIR_ROOT = "build"


@dataclass
class Recipe:
    """A validated recipe: the parsed file, its variants, and where each key was written."""

    path: Path
    name: str
    spec: RecipeFile
    variants: list[Variant]
    lines: LineIndex
    decision: Decision = field(default_factory=lambda: Decision(None, TOP1, 1.0))
    """The task, the metric that decides and its budget (`recipes.metric`)."""

    @property
    def folder(self) -> Path:
        return self.path.parent

    def resolve(self, value: str) -> Path:
        """A path written in the recipe: `~` expanded, relative to the recipe's folder."""
        path = Path(os.path.expanduser(value))
        return path if path.is_absolute() else self.folder / path

    def custom_objects(self) -> str | None:
        """`custom_objects:` as `load_keras_model` takes it: a FILE.py resolved here, or pkg.module."""
        value = self.spec.custom_objects
        if value is None or not (value.endswith(".py") or "/" in value or "\\" in value):
            return value
        return str(self.resolve(value))

    def dataset_spec(self, value: str) -> str:
        """A dataset spec with file paths resolved (built-in names such as 'digits' kept)."""
        return value if value in BUILTIN_DATASETS else str(self.resolve(value))

    def workdir(self, override: str | os.PathLike[str] | None = None) -> Path:
        """Where stages, models and reports go: --workdir, else `workdir:`, else ./build/<name>."""
        if override is not None:
            return Path(override).expanduser()
        if self.spec.workdir:
            return self.resolve(self.spec.workdir)
        return Path(DEFAULT_WORKDIR_ROOT) / self.name

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise UserError(f"recipe {self.name!r} has no variant {name!r}")


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read, validate and expand a recipe file; any problem is a UserError naming file:line."""
    source = Path(path)
    raw, index = load_yaml_with_lines(source)
    return _build(source, raw, index)


def parse_recipe(text: str, path: str | os.PathLike[str] = "recipe.yaml") -> Recipe:
    """As `load_recipe`, from text (`path` names it in messages and anchors relative paths)."""
    raw, index = parse_yaml_with_lines(text, str(path))
    return _build(Path(path), raw, index)


def _build(source: Path, raw: Any, index: LineIndex) -> Recipe:
    if raw is None:
        raise index.error((), "the recipe is empty; start from configs/recipes/demo.yaml")
    if not isinstance(raw, dict):
        raise index.error((), "a recipe must be a mapping (model:, data:, steps: ...)")
    for key in raw:
        if not isinstance(key, str):
            raise index.error((key,), f"key {echo(key)} must be a name")
    if isinstance(raw.get("data"), str):  # `data: digits` is short for `data: {train: digits}`
        raw = {**raw, "data": {"train": raw["data"]}}
    spec = validate_part(RecipeFile, raw, index)
    _check_model(spec, index)
    decision = decision_of(spec, raw, index)
    variants = expand_variants(spec, raw, index)
    name = spec.name or _name_from_file(source)
    return Recipe(source, name, spec, variants, index, decision)


def _check_model(spec: RecipeFile, index: LineIndex) -> None:
    model = spec.model
    sources = [k for k in ("demo", "file", "application") if getattr(model, k)]
    if len(sources) != 1:
        raise index.error(
            ("model",),
            "give exactly one of demo: true, file: PATH or application: NAME"
            + (f" (got {', '.join(sources)})" if sources else ""),
        )
    only_application = ("weights", "input_shape", "classes")
    if not model.application:
        for key in only_application:
            if getattr(model, key) is not None:
                raise index.error(("model", key), f"{key} is for application: models only")
        if model.options:
            raise index.error(("model", "options"), "options are for application: models only")
    if model.width is not None and not model.demo:
        raise index.error(("model", "width"), "width is for the demo model only")
    if model.application and model.input_shape is None:
        raise index.error(
            ("model",), "application: models need input_shape: [height, width, channels]"
        )
    if model.train is not None and spec.data is None:
        raise index.error(("model", "train"), "training needs data; add data: (e.g. data: digits)")
    if model.demo and spec.data is None:
        raise index.error(("model", "demo"), "the demo model is built for data; add data: digits")


def _name_from_file(source: Path) -> str:
    stem = "".join(c if c.isalnum() or c in "._-" else "-" for c in source.stem) or "recipe"
    return stem[:63]
