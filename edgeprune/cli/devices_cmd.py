"""`edgeprune devices list|check`, and the device-selection options the fleet commands share."""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from edgeprune.cli.common import console, print_json

INVENTORY_HELP = (
    "Inventory YAML (default: $EDGEPRUNE_INVENTORY or ~/.config/edgeprune/devices.yaml)."
)
DEVICE_HELP = "Device name (repeat, or comma-separate: --device pi4,jetson)."
TAG_HELP = "Every device with this tag (repeatable)."
ACCEPT_HELP = "Trust an unknown host's key and record it in known_hosts (like StrictHostKeyChecking=accept-new). A changed key is always refused."
CONCURRENCY_HELP = "How many devices to work on at once."

err_console = Console(stderr=True, highlight=False)


def select_devices(
    inventory_path: str | None,
    names: list[str] | None,
    tags: list[str] | None,
    all_: bool,
    default_all: bool = False,
) -> list[Any]:
    """Load the inventory and pick devices (all of them when nothing is named and default_all)."""
    from edgeprune.fleet.inventory import load_inventory

    inventory = load_inventory(inventory_path)
    if default_all and not (names or tags or all_):
        all_ = True
    return inventory.select(names, tags, all_)


def connect_options(accept_new_host_key: bool) -> Any:
    from edgeprune.fleet.session import ConnectOptions

    return ConnectOptions(accept_new_host_key=accept_new_host_key)


def report_failures(group: Any, what: str) -> None:
    """Print one `error:` line per failed device, then fail the command (exit 3) if any did."""
    from edgeprune.fleet.deploy import require_success

    for outcome in group.failed:
        print(f"error: {outcome.message}", file=sys.stderr)
    require_success(group, what)


def human_bytes(value: int | None) -> str:
    if value is None:
        return "–"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value} B"


def _list(inventory: str | None, as_json: bool) -> None:
    from edgeprune.fleet.inventory import load_inventory

    inv = load_inventory(inventory)
    rows = [
        {
            "name": d.name,
            "kind": d.kind,
            "address": d.describe(),
            "tags": list(d.tags),
            "python": d.python,
            "spool": d.spool,
            "known_hosts": d.known_hosts or None,
        }
        for d in inv.devices.values()
    ]
    if as_json:
        print_json({"inventory": str(inv.path) if inv.path else None, "devices": rows})
        return
    table = Table(title=f"devices ({inv.path or 'built-in only'})")
    for column in ("name", "kind", "address", "tags", "spool"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], row["kind"], row["address"], ",".join(row["tags"]), row["spool"])
    console.print(table)


def _check(
    names: list[str],
    inventory: str | None,
    tags: list[str] | None,
    all_: bool,
    accept_new_host_key: bool,
    concurrency: int,
    as_json: bool,
) -> None:
    from edgeprune.fleet.health import check_devices

    devices = select_devices(inventory, names, tags, all_, default_all=True)
    group = check_devices(
        devices, concurrency=concurrency, connect=connect_options(accept_new_host_key)
    )
    if as_json:
        print_json(
            {
                "devices": [
                    {"device": o.device.name, "ok": o.ok, "error": None if o.ok else o.message}
                    | (o.value.to_dict() if o.value else {})
                    for o in group
                ]
            }
        )
    else:
        table = Table(title="device check")
        for column in (
            "device",
            "reachable",
            "python",
            "runtime",
            "agent",
            "free disk",
            "daemon",
            "problems",
        ):
            table.add_column(column)
        for o in group:
            h = o.value
            if h is None:
                from edgeprune.fleet.transport import ConnectionLost

                reached = "[red]no[/red]" if isinstance(o.error, ConnectionLost) else "yes"
                table.add_row(o.device.name, reached, "–", "–", "–", "–", "–", o.message)
                continue
            runtime = (
                f"{h.runtime} {h.runtime_version or ''}".strip() if h.runtime else "[red]none[/red]"
            )
            daemon = (
                "–" if h.daemon_running is None else ("running" if h.daemon_running else "stopped")
            )
            table.add_row(
                h.device,
                "yes",
                f"{h.python} {h.machine}",
                runtime,
                h.agent_version or "[yellow]not installed[/yellow]",
                human_bytes(h.free_bytes),
                daemon,
                "; ".join(h.problems) or "–",
            )
        console.print(table)
    report_failures(group, "device check")


def register(app: typer.Typer) -> None:
    """Add `devices list` and `devices check`."""
    devices_app = typer.Typer(
        help="The boards in the inventory (plus the built-in `local`).", no_args_is_help=True
    )

    @devices_app.command("list")
    def list_cmd(
        inventory: str = typer.Option(None, "--inventory", help=INVENTORY_HELP),
        as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
    ) -> None:
        """List the devices of the inventory (no connection is made)."""
        _list(inventory, as_json)

    @devices_app.command("check")
    def check_cmd(
        names: list[str] = typer.Argument(None, help="Devices to check (default: all)."),
        inventory: str = typer.Option(None, "--inventory", help=INVENTORY_HELP),
        device: list[str] = typer.Option(None, "--device", "-d", help=DEVICE_HELP),
        tag: list[str] = typer.Option(None, "--tag", "-t", help=TAG_HELP),
        all_: bool = typer.Option(False, "--all", help="Every device."),
        accept_new_host_key: bool = typer.Option(False, "--accept-new-host-key", help=ACCEPT_HELP),
        concurrency: int = typer.Option(8, "--concurrency", min=1, max=64, help=CONCURRENCY_HELP),
        as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
    ) -> None:
        """Connect to each device: reachable, login, Python, runtime, agent, free disk, daemon."""
        _check(
            list(names or []) + list(device or []),
            inventory,
            tag,
            all_,
            accept_new_host_key,
            concurrency,
            as_json,
        )

    app.add_typer(devices_app, name="devices")
