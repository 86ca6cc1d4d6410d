"""CLI flags made from a stage's option definition, so the default and help live there only."""

from __future__ import annotations

from typing import Any

import typer
from pydantic import BaseModel
from pydantic_core import PydanticUndefined


def flag(options: type[BaseModel], name: str, *decls: str, **overrides: Any) -> Any:
    """`typer.Option` for field `name` of `options`: its default and its help text.

    `decls` are the flag spellings (default `--name-with-dashes`); `overrides` pass
    anything else typer takes (`metavar`, a CLI-only default such as `None` for "unset").
    """
    field = options.model_fields[name]
    default = field.get_default(call_default_factory=True)
    if default is PydanticUndefined:
        default = ...
    spelled = decls or ("--" + name.replace("_", "-"),)
    settings: dict[str, Any] = {"help": field.description}
    settings.update(overrides)
    default = settings.pop("default", default)
    return typer.Option(default, *spelled, **settings)


def distillation_text(distillation: dict[str, Any], teacher: str) -> str:
    """ "distilled from the dense model (temperature 4, alpha 0.5)" for a report's record."""
    return (
        f"distilled from {teacher} (temperature {distillation['temperature']:g}, "
        f"alpha {distillation['alpha']:g})"
    )
