"""Which devices a recipe runs on: names or tags, from `devices=` (--device) or the recipe's `devices:`."""

from __future__ import annotations

from edgeprune.errors import UserError
from edgeprune.fleet.inventory import Device, Inventory, load_inventory
from edgeprune.recipes.loader import Recipe


def resolve_devices(
    recipe: Recipe, override: list[str] | None, inventory_path: str | None
) -> list[Device]:
    """Device names or tags (from `override`, else the recipe) resolved in the inventory."""
    path = inventory_path
    if path is None and recipe.spec.inventory:
        path = str(recipe.resolve(recipe.spec.inventory))
    inventory = load_inventory(path)
    wanted = override if override else recipe.spec.devices
    chosen: dict[str, Device] = {}
    for position, entry in enumerate(wanted):
        matched = _match(inventory, entry)
        if not matched:
            where = (
                f"inventory {str(inventory.path)!r}" if inventory.path else "the built-in inventory"
            )
            known = ", ".join(inventory.names())
            if override:  # the caller's `devices=`: named as the parameter
                raise UserError(
                    f"devices: no device or tag {entry!r} in {where}; known: {known}",
                    params=("devices",),
                )
            raise recipe.lines.error(
                ("devices", position), f"no device or tag {entry!r} in {where}; devices: {known}"
            )
        for device in matched:
            chosen.setdefault(device.name, device)
    return list(chosen.values())


def _match(inventory: Inventory, entry: str) -> list[Device]:
    if entry in inventory.devices:
        return [inventory.devices[entry]]
    return [d for d in inventory.devices.values() if entry in d.tags]
