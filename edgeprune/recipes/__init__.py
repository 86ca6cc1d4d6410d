"""Recipes and sweeps: one YAML file from a Keras model to the best variant for each board.

    from edgeprune.recipes import load_recipe, plan_recipe, run_recipe
    recipe = load_recipe("configs/recipes/demo.yaml")     # UserError naming file:line
    outcome = run_recipe(recipe, accuracy_budget=1.0)
    print(outcome.report.recommendations())               # {"local": "pruned-int8", ...}

Importing this package does not import TensorFlow or paramiko.
"""

from __future__ import annotations

from typing import Any

from edgeprune.recipes.loader import Recipe, load_recipe, parse_recipe
from edgeprune.recipes.recommend import Candidate, Recommendation, pareto_front, recommend
from edgeprune.recipes.sweep import StepConfig, Variant

__all__ = [
    "Candidate",
    "Recipe",
    "Recommendation",
    "StepConfig",
    "Variant",
    "load_recipe",
    "pareto_front",
    "parse_recipe",
    "plan_recipe",
    "recipe_report_for_run",
    "recommend",
    "run_recipe",
]

_LAZY = {
    "plan_recipe": "edgeprune.recipes.executor",
    "run_recipe": "edgeprune.recipes.executor",
    "recipe_report_for_run": "edgeprune.recipes.report",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
