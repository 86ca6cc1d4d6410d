"""`edgeprune devices list|check`: the boards of the inventory, and whether each is ready."""

from __future__ import annotations

import typer

from edgeprune.cli.common import (
    accept_option,
    all_option,
    concurrency_alias_option,
    deploy_options,
    device_option,
    inventory_option,
    joined,
    json_option,
    parallel_option,
    print_json,
    select_devices,
    tag_option,
)
from edgeprune.cli.present_fleet import (
    outcome_documents,
    print_check_table,
    print_device_list,
    report_failures,
)


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
    print_device_list(f"devices ({inv.path or 'built-in only'})", rows)


def _check(
    names: list[str],
    inventory: str | None,
    tags: list[str] | None,
    all_: bool,
    accept_new_host_key: bool,
    parallel: int | None,
    concurrency: int | None,
    as_json: bool,
) -> None:
    from edgeprune.fleet.health import check_devices

    deploy = deploy_options(parallel, accept_new_host_key, concurrency)
    devices = select_devices(inventory, names, tags, all_, default_all=True)
    group = check_devices(devices, parallel=deploy.parallel, connect=deploy.connect())
    if as_json:
        print_json({"devices": outcome_documents(group)})
    else:
        print_check_table(group)
    report_failures(group, "device check")


def register(app: typer.Typer) -> None:
    """Add `devices list` and `devices check`."""
    devices_app = typer.Typer(
        help="The boards in the inventory (plus the built-in `local`).", no_args_is_help=True
    )

    @devices_app.command("list")
    def list_cmd(
        inventory: str = inventory_option(),
        as_json: bool = json_option(),
    ) -> None:
        """List the devices of the inventory (no connection is made)."""
        _list(inventory, as_json)

    @devices_app.command("check")
    def check_cmd(
        names: list[str] = typer.Argument(None, help="Devices to check (default: all)."),
        inventory: str = inventory_option(),
        device: list[str] = device_option(),
        tag: list[str] = tag_option(),
        all_: bool = all_option("Every device."),
        accept_new_host_key: bool = accept_option(),
        parallel: int | None = parallel_option(),
        concurrency: int | None = concurrency_alias_option(),
        as_json: bool = json_option(),
    ) -> None:
        """Connect to each device: reachable, login, Python, runtime, agent, free disk, daemon."""
        _check(
            joined(names, device),
            inventory,
            tag,
            all_,
            accept_new_host_key,
            parallel,
            concurrency,
            as_json,
        )

    app.add_typer(devices_app, name="devices")
