"""The recipe's `adapt` step: swept like any step, checked by AdaptOptions before any work."""

from __future__ import annotations

import pytest

from edgeprune.errors import UserError
from edgeprune.recipes import load_recipe
from edgeprune.recipes.stages import STAGE_RUNNERS

BASE = """
model: {demo: true, width: 8, train: {epochs: 1}}
data: digits
"""


def test_adapt_step_sweeps_its_targets(write_recipe):
    path = write_recipe(
        BASE
        + """
pipelines:
  a:
    adapt: {target_speedup: [1.3, 1.6], device: local, short_epochs: 1}
    convert: {quantize: none}
"""
    )
    recipe = load_recipe(path)
    assert [v.steps[0].kind for v in recipe.variants] == ["adapt", "adapt"]
    assert [v.steps[0].options["target_speedup"] for v in recipe.variants] == [1.3, 1.6]
    assert recipe.variants[0].steps[0].options["granularity"] == 8
    assert "adapt" in STAGE_RUNNERS


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("adapt: {device: local}", "give one target"),
        ("adapt: {target_speedup: 2, quantize: float16}", "quantize"),
    ],
)
def test_adapt_step_mistakes_name_the_line(write_recipe, step, message):
    path = write_recipe(BASE + f"steps:\n  {step}\n")
    with pytest.raises(UserError, match=message) as caught:
        load_recipe(path)
    assert "recipe.yaml:" in str(caught.value)


def test_adapt_step_needs_data(write_recipe):
    path = write_recipe("model: {file: m.keras}\nsteps:\n  adapt: {target_speedup: 2}\n")
    with pytest.raises(UserError, match="adapt fine-tunes every proposal"):
        load_recipe(path)
