"""The `xnnpack_fix` recipe step: a stock MobileNetV2 becomes sparse-path eligible in a recipe.

Stock keras.applications models pad their stride-2 convs asymmetrically, which XNNPACK's
sparse path refuses; the step rewrites them (as `edgeprune xnnpack-fix`), so the prune step
after it (policy xnnpack) prunes the 1x1 convs of whole sparse clusters.
"""

from __future__ import annotations

import json

from edgeprune.workflows.inspection import inspect_model

RECIPE = """
name: fix-then-prune
model:
  application: MobileNetV2
  weights: null
  input_shape: [32, 32, 3]
  classes: 4
  options: {{alpha: 0.35}}
pipelines:
  stock:
    prune: {{method: oneshot, sparsity: 0.8}}
  fixed:
    xnnpack_fix: {{samples: 4}}
    prune: {{method: oneshot, sparsity: 0.8, policy: xnnpack}}
devices: [local]
bench: {{runs: 3, warmup: 1}}
accuracy_budget: null
"""


def test_the_fix_step_makes_the_stock_model_eligible(run_cli, write_recipe, tmp_path):
    recipe = write_recipe(RECIPE.format())
    workdir, db = tmp_path / "work", tmp_path / "results.db"
    outcome = run_cli("run", recipe, "--workdir", workdir, "--db", db, "--json")
    assert outcome.code == 0, outcome.err
    document = json.loads(outcome.out)
    assert document["grid"]["fixed-fp32"]["xnnpack_fix"] == "done"

    fix_manifests = [
        json.loads(p.read_text())
        for p in workdir.glob("stages/*/model.keras.json")
        if json.loads(p.read_text()).get("step") == "xnnpack_fix"
    ]
    assert len(fix_manifests) == 1
    fixed = fix_manifests[0]
    assert fixed["extra"]["rewrites"], fixed  # the stride-2 convs were rewritten

    verdicts = {}
    for tflite in workdir.glob("stages/*/model.tflite"):
        manifest = json.loads((tflite.parent / "model.tflite.json").read_text())
        verdicts[manifest["source"]["path"]] = inspect_model(tflite)["xnnpack"]["eligible"]
    assert sorted(verdicts.values()) == [False, True]  # stock refused, fixed taken


def test_bad_fix_options_are_refused_with_file_and_line(run_cli, write_recipe):
    recipe = write_recipe(
        RECIPE.format().replace("xnnpack_fix: {samples: 4}", "xnnpack_fix: {samples: 0}")
    )
    outcome = run_cli("run", recipe, "--dry-run")
    assert outcome.code == 2
    assert outcome.err.startswith("error: ") and "recipe.yaml:" in outcome.err, outcome.err
    assert "samples" in outcome.err
