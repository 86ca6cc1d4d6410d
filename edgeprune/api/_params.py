"""Keyword checks shared by the verbs: an unknown option is a UserError that names it."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from edgeprune.errors import UserError


def keywords(function: Callable[..., Any], skip: Iterable[str] = ()) -> set[str]:
    """The parameter names of `function`, less those in `skip`."""
    return set(inspect.signature(function).parameters) - set(skip)


def check_known(options: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(options) - known)
    if unknown:
        raise UserError(
            f"unknown option {unknown[0]!r}; known options: {', '.join(sorted(known))}",
            params=(unknown[0],),
        )
