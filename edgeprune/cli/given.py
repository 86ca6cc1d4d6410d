"""The options a user actually typed, so "left at its default" stays distinguishable."""

from __future__ import annotations

from typing import Any

import typer


def given_options(ctx: typer.Context, values: dict[str, Any]) -> dict[str, Any]:
    """`values` (parameter name -> value) without those the command line left at the default.

    Options classes check combinations ("epochs needs data") on what was given, so the CLI
    passes only those and lets the class fill in the rest.
    """
    typed = {"COMMANDLINE", "ENVIRONMENT"}
    return {
        name: value
        for name, value in values.items()
        if getattr(ctx.get_parameter_source(name), "name", None) in typed
    }
