"""What every command module shares: output helpers and list parsing."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from edgeprune.errors import UserError

console = Console(highlight=False)


def print_json(payload: Any) -> None:
    """Machine-readable output: one JSON document on stdout, nothing else."""
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def parse_int_list(text: str, option: str, minimum: int | None = None) -> list[int]:
    """'1,4' -> [1, 4], with an error that names the option."""
    values: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = int(part)
        except ValueError:
            raise UserError(
                f"{option}: {part!r} is not a whole number (e.g. {option} 1,4)"
            ) from None
        if minimum is not None and value < minimum:
            raise UserError(f"{option}: {value} is below the minimum {minimum}")
        values.append(value)
    if not values:
        raise UserError(f"{option}: give at least one number (e.g. {option} 1,4)")
    return values
