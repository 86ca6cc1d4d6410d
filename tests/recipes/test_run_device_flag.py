"""`run --device` is spelled as in `bench`; the old `--devices` still works, with a note."""

from __future__ import annotations

import json

RECIPE = """
model: {demo: true}
data: digits
steps: {}
devices: [local]
deploy: {parallel: 2}
"""

NOTE = "note: --devices is deprecated; use --device"


def test_run_device_takes_names_and_tags_comma_separated(run_cli, write_recipe):
    recipe = write_recipe(RECIPE)
    outcome = run_cli("run", recipe, "--dry-run", "--device", "local", "--json")
    assert outcome.code == 0, outcome.err
    assert NOTE not in outcome.err
    assert json.loads(outcome.out)["devices"] == ["local"]
    outcome = run_cli("run", recipe, "--dry-run", "-d", "local,jetson")
    assert outcome.code == 2
    assert outcome.err.startswith("error: --device: no device or tag 'jetson'")


def test_run_devices_still_works_and_says_what_to_use(run_cli, write_recipe):
    recipe = write_recipe(RECIPE)
    outcome = run_cli("run", recipe, "--dry-run", "--devices", "local", "--json")
    assert outcome.code == 0, outcome.err
    assert outcome.err.splitlines()[0] == NOTE
    assert json.loads(outcome.out)["devices"] == ["local"]


def test_the_recipes_deploy_section_is_checked(run_cli, write_recipe):
    recipe = write_recipe(RECIPE.replace("parallel: 2", "parallel: 0"))
    outcome = run_cli("run", recipe, "--dry-run")
    assert outcome.code == 2
    assert "deploy.parallel: should be greater than or equal to 1" in outcome.err


def test_the_recipes_deploy_section_becomes_deploy_options(write_recipe):
    from edgeprune.fleet.options import DeployOptions
    from edgeprune.recipes import load_recipe
    from edgeprune.recipes.executor import deploy_options_of

    given = deploy_options_of(load_recipe(write_recipe(RECIPE)))
    assert given == DeployOptions(parallel=2)
    plain = write_recipe(RECIPE.replace("deploy: {parallel: 2}\n", ""), "plain.yaml")
    assert deploy_options_of(load_recipe(plain)) == DeployOptions()
    old = write_recipe(RECIPE.replace("parallel: 2", "concurrency: 2"), "old.yaml")
    assert deploy_options_of(load_recipe(old)) == given  # the old name still reads


def test_run_parallel_and_its_old_spelling(run_cli, write_recipe):
    recipe = write_recipe(RECIPE)
    outcome = run_cli("run", recipe, "--dry-run", "--parallel", "3", "--json")
    assert outcome.code == 0, outcome.err
    assert "deprecated" not in outcome.err
    outcome = run_cli("run", recipe, "--dry-run", "--concurrency", "3", "--json")
    assert outcome.code == 0, outcome.err
    assert outcome.err.splitlines()[0] == "note: --concurrency is deprecated; use --parallel"
