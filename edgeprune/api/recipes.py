"""Recipes from Python: `load_recipe` a YAML file, `run_recipe` it (build, measure, recommend)."""

from __future__ import annotations

import os
from typing import Any

from edgeprune.api.results import RecipeResult
from edgeprune.recipes.loader import Recipe, load_recipe

__all__ = ["Recipe", "load_recipe", "run_recipe"]


def run_recipe(
    recipe: Recipe | str | os.PathLike[str],
    *,
    devices: str | list[str] | None = None,
    **options: Any,
) -> RecipeResult:
    """Build, evaluate, deploy and benchmark every variant; the best one per device.

    `recipe` is a loaded Recipe or the path of its YAML file; `devices` (names, or one
    comma-separated string) replaces the recipe's; `options` are
    `edgeprune.recipes.run_recipe`'s (workdir, inventory, db, strategy, accuracy_budget, and
    the constraints `max_latency_ms`, `latency_percentile`, `max_peak_memory_mb`,
    `max_model_kb`, which replace the recipe's and decide again from the cache).
    """
    from edgeprune.api._params import check_known, keywords
    from edgeprune.recipes.executor import run_recipe as run

    check_known(options, keywords(run, skip=("recipe", "devices")))
    loaded = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    chosen = [devices] if isinstance(devices, str) else devices
    return RecipeResult(run(loaded, devices=chosen, **options))
