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


def with_options(options: object, given: dict[str, Any]) -> dict[str, Any]:
    """The values of a stage's options object (e.g. `ep.PruneOptions`), keywords given winning.

    Values left unset (None) are dropped, so the verb's own defaults apply to them.
    """
    if options is None:
        return dict(given)
    to_dict = getattr(options, "to_dict", None)
    if not callable(to_dict):
        raise UserError(
            f"options is a {type(options).__name__}; give a stage's options object "
            "(e.g. ep.PruneOptions) or keywords",
            params=("options",),
        )
    values = {key: value for key, value in dict(to_dict()).items() if value is not None}
    return {**values, **given}


def take(values: dict[str, Any], name: str, explicit: Any) -> Any:
    """`name` out of `values`; a value passed as its own argument wins."""
    found = values.pop(name, None)
    return explicit if explicit is not None else found
