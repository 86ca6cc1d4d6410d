"""Each device's constraints for a run: the recipe's global ones, its device entries, the caller's."""

from __future__ import annotations

from edgeprune.fleet.inventory import Device
from edgeprune.recipes.constraints import ConstraintOptions, per_device_limits
from edgeprune.recipes.loader import Recipe


def recipe_constraints(recipe: Recipe) -> tuple[ConstraintOptions, dict[str, ConstraintOptions]]:
    """The recipe's `constraints:` as options: the global limits and those per device/tag."""
    values = recipe.spec.constraints.model_dump()
    per_device = {
        name: ConstraintOptions.create(**entry) for name, entry in values.pop("devices").items()
    }
    return ConstraintOptions.create(**values), per_device


def device_limits(
    recipe: Recipe, devices: list[Device], given: ConstraintOptions | None = None
) -> dict[str, ConstraintOptions]:
    """device name -> its limits; a `constraints.devices` key naming no device is refused
    (file:line), since a typo there would silently drop a limit."""
    base, per_device = recipe_constraints(recipe)
    known = set(recipe.spec.devices)
    for device in devices:
        known.add(device.name)
        known.update(device.tags)
    for key in per_device:
        if key not in known:
            raise recipe.lines.error(
                ("constraints", "devices", key),
                f"no device or tag {key!r} in this run; devices: "
                + ", ".join(d.name for d in devices),
            )
    return {d.name: per_device_limits(base, per_device, d.name, d.tags, given) for d in devices}
