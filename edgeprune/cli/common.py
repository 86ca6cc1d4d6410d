"""What every command module shares: output helpers, list parsing and the shared options.

An option several commands take (`--json`, `--db`, `--device`, `--tag`, `--inventory`,
`--accept-new-host-key`, `--parallel`) is defined here once, so it has the same name and
help everywhere. Commands import this module and the presenters; never the other way.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from edgeprune.cli.options import flag
from edgeprune.errors import UserError
from edgeprune.fleet.fanout import MAX_PARALLEL
from edgeprune.fleet.options import DeployOptions

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

INVENTORY_HELP = (
    "Inventory YAML (default: $EDGEPRUNE_INVENTORY or ~/.config/edgeprune/devices.yaml)."
)
DEVICE_HELP = "Device name (repeat, or comma-separate: --device pi4,jetson)."
TAG_HELP = "Every device with this tag (repeatable)."
DB_HELP = "Results DB (default: $EDGEPRUNE_RESULTS_DB or ~/.local/share/edgeprune/results.db)."
RUN_DB_HELP = "Results DB (default: $EDGEPRUNE_RESULTS_DB, else results.db in the work dir)."


def json_option() -> Any:
    """`--json`: one JSON document on stdout, nothing else."""
    return typer.Option(False, "--json", help="One JSON document on stdout.")


def quiet_option() -> Any:
    """`--quiet`/`-q`: no progress on stderr (results and errors still print)."""
    return typer.Option(False, "--quiet", "-q", help="Show no training progress.")


def mlflow_option() -> Any:
    """`--mlflow URI`: also log the numbers to MLflow (one MLflow run per model × device)."""
    return typer.Option(
        None,
        "--mlflow",
        metavar="URI",
        help="Also log to MLflow at this tracking URI (e.g. sqlite:///mlflow.db); needs "
        "pip install 'edgeprune[mlflow]'.",
    )


def db_option(help: str = DB_HELP) -> Any:
    """`--db`: the results store."""
    return typer.Option(None, "--db", help=help)


def inventory_option() -> Any:
    """`--inventory`: the devices file."""
    return typer.Option(None, "--inventory", help=INVENTORY_HELP)


def device_option(help: str = DEVICE_HELP) -> Any:
    """`--device`/`-d`: device names (repeatable, comma-separated)."""
    return typer.Option(None, "--device", "-d", help=help)


def tag_option() -> Any:
    """`--tag`/`-t`: every device with this tag."""
    return typer.Option(None, "--tag", "-t", help=TAG_HELP)


def all_option(help: str = "Every device of the inventory.") -> Any:
    """`--all`: every device of the inventory."""
    return typer.Option(False, "--all", help=help)


def accept_option(**overrides: Any) -> Any:
    """`--accept-new-host-key`: trust and record an unknown SSH host key."""
    return flag(DeployOptions, "accept_new_host_key", **overrides)


def parallel_option(**overrides: Any) -> Any:
    """`--parallel N`: devices worked on at once (default: all of them, up to a cap)."""
    return flag(DeployOptions, "parallel", min=1, max=MAX_PARALLEL, **overrides)


def concurrency_alias_option() -> Any:
    """`--concurrency`: the old spelling of `--parallel`; still works, with a note."""
    return typer.Option(
        None,
        "--concurrency",
        min=1,
        max=MAX_PARALLEL,
        hidden=True,
        help="Deprecated spelling of --parallel.",
    )


def chosen_parallel(parallel: int | None, concurrency: int | None) -> int | None:
    """`--parallel`, or the deprecated `--concurrency` (with a note); not both."""
    if concurrency is None:
        return parallel
    deprecated_flag("--concurrency", "--parallel")
    if parallel is not None:
        raise UserError("give --parallel, not also its old spelling --concurrency")
    return concurrency


def deploy_options(
    parallel: int | None, accept_new_host_key: bool, concurrency: int | None = None
) -> DeployOptions:
    """The flags' values as `DeployOptions` (one validation for every fleet command)."""
    return DeployOptions.create(
        parallel=chosen_parallel(parallel, concurrency), accept_new_host_key=accept_new_host_key
    )


def select_devices(
    inventory_path: str | None,
    names: list[str] | None,
    tags: list[str] | None,
    all_: bool,
    default_all: bool = False,
    default_local: bool = False,
) -> list[Any]:
    """Load the inventory and pick devices (all of them when nothing is named and default_all).

    With default_local and neither a selection nor an inventory file, `local` is the only
    device there is, so a first try needs no flag; the one-line note says what was chosen.
    """
    from edgeprune.fleet.inventory import LOCAL_DEVICE, load_inventory

    inventory = load_inventory(inventory_path)
    if default_all and not (names or tags or all_):
        all_ = True
    if default_local and inventory.path is None and not (names or tags or all_):
        err_console.print(f"no --device given and no inventory: measuring on {LOCAL_DEVICE}")
        names = [LOCAL_DEVICE]
    return inventory.select(names, tags, all_)


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


def deprecated_flag(old: str, new: str) -> None:
    """One line on stderr for a spelling that still works: `note: --old is deprecated; use --new`."""
    print(f"note: {old} is deprecated; use {new}", file=sys.stderr)


def joined(*parts: Iterable[str] | None) -> list[str]:
    """Several repeatable options' values as one list."""
    return [value for part in parts for value in (part or [])]
