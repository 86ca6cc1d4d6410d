"""The recipe loader: variants from sweeps, and every mistake named by file and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgeprune.errors import UserError
from edgeprune.recipes import load_recipe

REPO = Path(__file__).resolve().parents[2]

BASE = """
model: {demo: true, width: 8, train: {epochs: 1}}
data: digits
"""


def error_of(path: Path) -> str:
    with pytest.raises(UserError) as caught:
        load_recipe(path)
    return str(caught.value)


def test_demo_recipe_makes_the_five_variants_of_the_issue():
    recipe = load_recipe(REPO / "configs/recipes/demo.yaml")
    names = [v.name for v in recipe.variants]
    assert names == ["dense-fp32", "dense-int8", "pruned-fp32", "pruned-int8", "channels-int8"]
    kinds = {v.name: [s.kind for s in v.steps] for v in recipe.variants}
    assert kinds["pruned-int8"] == ["prune", "convert"]
    assert kinds["channels-int8"] == ["channels", "finetune", "convert"]
    assert recipe.variant("pruned-fp32").steps[0].options["sparsity"] == 0.8
    assert recipe.spec.devices == ["local"]
    assert recipe.workdir() == Path("build/demo")


def test_mobilenet_example_loads_with_its_sweeps():
    recipe = load_recipe(REPO / "configs/recipes/mobilenetv2-pi-jetson.yaml")
    assert recipe.spec.model.application == "MobileNetV2"
    assert recipe.spec.model.weights is None
    assert len(recipe.variants) == 3 + 2 * 2 + 2
    assert {"pruned-sp0.75-int8", "channels-ch0.3-int8", "dense-fp16"} <= {
        v.name for v in recipe.variants
    }
    assert recipe.spec.devices == ["pi", "jetson"]


def test_sweep_axes_multiply_within_a_pipeline_and_add_across(write_recipe):
    path = write_recipe(
        BASE
        + """
pipelines:
  p:
    prune: {method: oneshot, sparsity: [0.5, 0.75, 0.9]}
    convert: {quantize: [none, int8]}
  c:
    channels: {ratio: 0.5, exclude: [[], [classifier]]}
    finetune: {epochs: 1, learning_rate: 1e-3}
"""
    )
    recipe = load_recipe(path)
    names = [v.name for v in recipe.variants]
    assert len(names) == 3 * 2 + 2 and len(set(names)) == len(names)
    assert "p-sp0.75-int8" in names
    sparsities = sorted(
        {v.steps[0].options["sparsity"] for v in recipe.variants if v.pipeline == "p"}
    )
    assert sparsities == [0.5, 0.75, 0.9]
    excludes = [v.steps[0].options["exclude"] for v in recipe.variants if v.pipeline == "c"]
    assert excludes == [[], ["classifier"]]
    # YAML 1.1 reads 1e-3 as a string; the loader reads it as the number it is
    assert recipe.variants[-1].steps[1].options["learning_rate"] == pytest.approx(0.001)


def test_a_list_valued_option_is_one_value_not_a_sweep(write_recipe):
    path = write_recipe(BASE + "steps:\n  channels: {ratio: 0.5, exclude: [classifier, pool]}\n")
    (variant,) = load_recipe(path).variants
    assert variant.steps[0].options["exclude"] == ["classifier", "pool"]


@pytest.mark.parametrize(
    ("text", "line", "pattern"),
    [
        (BASE + "stepz: {}\n", 3, r"unknown key 'stepz' \(did you mean 'steps'\?\)"),
        (
            BASE + "steps:\n  prune:\n    method: oneshot\n    sparsty: 0.5\n",
            6,
            r"steps\.prune: unknown key 'sparsty' \(did you mean 'sparsity'\?\)",
        ),
        (
            BASE + "steps:\n  prune: {method: oneshot,\n          sparsity: high}\n",
            5,
            r"steps\.prune\.sparsity: should be a valid number \(got 'high'\)",
        ),
        (
            BASE
            + "steps:\n  prune:\n    method: oneshot\n    sparsity:\n      - 0.5\n      - '0.7'\n",
            8,
            r"steps\.prune\.sparsity\[1\]: should be a valid number",
        ),
        (
            BASE + "steps:\n  convert: {quantize: []}\n",
            4,
            r"steps\.convert\.quantize: an empty list makes 0 variants",
        ),
        (BASE + "pipelines: {}\n", 3, r"the sweep would make 0 variants"),
        (
            BASE + "steps:\n  convert: {quantize: int4}\n",
            4,
            r"steps\.convert\.quantize: should be 'none', 'dynamic', 'float16', 'int8' or 'int16x8'",
        ),
        (BASE + "steps:\n  quantise: {}\n", 4, r"unknown step 'quantise'"),
        (
            BASE + "steps:\n  finetune: {epochs: 1, learning_rate_decay: linear}\n",
            4,
            r"steps\.finetune\.learning_rate_decay: should be 'constant' or 'cosine'",
        ),
        (
            BASE + "steps:\n  convert: {}\n  prune: {method: oneshot, sparsity: 0.5}\n",
            4,
            r"convert makes the \.tflite, so it must be last",
        ),
        (
            BASE + "steps:\n  prune:\n    method: oneshot\n    sparsity: 1.5\n",
            6,
            r"steps\.prune\.sparsity: .*1\.5",
        ),
        (
            BASE + "steps:\n  prune: {method: oneshot, sparsity: 0.5, policy: fastest}\n",
            4,
            r"policy 'fastest' is not known",
        ),
        (
            "model: {demo: true}\nsteps:\n  convert: {quantize: int8}\n",
            1,
            r"the demo model is built for data",
        ),
        (
            "model: {file: m.keras}\nsteps:\n  convert:\n    quantize: int8\n",
            4,
            r"steps\.convert\.quantize: .*int8 needs calibration data",
        ),
        (
            "model: {file: m.keras}\nsteps:\n  prune: {sparsity: 0.5}\n",
            3,
            r"steps\.prune: gradual pruning trains on data\.train; add data:",
        ),
        ("model: {file: m.keras, demo: true}\nsteps: {}\n", 1, r"give exactly one of"),
        (
            "model: {file: m.keras, width: 8}\nsteps: {}\n",
            1,
            r"model\.width: width is for the demo",
        ),
        (BASE + "steps: {}\nbench: {runs: 0}\n", 4, r"bench\.runs: should be greater than"),
        (
            BASE + "steps: {}\naccuracy_budget: '1'\n",
            4,
            r"accuracy_budget: should be a valid number",
        ),
        (BASE + "steps: {}\ndata: other\n", 4, r"key 'data' is given twice \(first at line 2\)"),
        (BASE + "steps: {\n", 4, r"not valid YAML"),
        ("- just\n- a list\n", 1, r"a recipe must be a mapping"),
        (BASE + "steps: {}\npipelines: {a: {}}\n", 4, r"give either 'steps'"),
        (
            BASE
            + "steps:\n  prune:\n    method: oneshot\n    sparsity:\n      - 0.5\n      - 0.5\n",
            8,
            r"steps\.prune\.sparsity: 0\.5 is listed twice",
        ),
        (
            BASE
            + "steps:\n  prune: {method: oneshot, sparsity: ["
            + ", ".join(str(i / 1000) for i in range(300))
            + "]}\n",
            4,
            r"steps\.prune\.sparsity: 300 sweep values; at most 256",
        ),
        (
            BASE
            + "steps:\n  prune: {method: oneshot, sparsity: ["
            + ", ".join(str(i / 1000) for i in range(100))
            + "]}\n  convert: {quantize: [none, int8, float16, dynamic]}\n",
            3,
            r"steps: the sweep makes 400 variants \(the product of its lists\); at most 256",
        ),
        (
            BASE + 'pipelines:\n  "a\\x1fb": {}\n',
            4,
            r"pipelines\['a\\x1fb'\]: a pipeline name must be",
        ),
    ],
)
def test_mistakes_name_the_file_and_line(write_recipe, text, line, pattern):
    path = write_recipe(text)
    message = error_of(path)
    assert message.startswith(f"{path}:{line}: "), message
    assert re.search(pattern, message), message


def test_empty_and_missing_recipes(write_recipe, tmp_path):
    assert "the recipe is empty" in error_of(write_recipe("# nothing\n"))
    assert "does not exist" in error_of(tmp_path / "absent.yaml")
    assert "is a directory" in error_of(tmp_path)
    assert "required key 'model' is missing" in error_of(write_recipe("steps: {}\n"))


def test_cli_reports_a_bad_recipe_in_one_line_with_exit_2(run_cli, write_recipe):
    path = write_recipe(BASE + "steps:\n  prune: {method: oneshot, sparsity: 0.5, colour: red}\n")
    outcome = run_cli("run", path, "--dry-run")
    assert outcome.code == 2
    assert outcome.err.strip().splitlines() == [
        f"error: {path}:4: steps.prune: unknown key 'colour'; known keys: "
        + ", ".join(
            [
                "method",
                "distill",
                "loss",
                "sparsity",
                "scope",
                "max_layer_sparsity",
                "policy",
                "pattern",
                "include",
                "exclude",
                "include_types",
                "min_params",
                "schedule",
                "begin_step",
                "end_step",
                "frequency",
                "initial_sparsity",
                "power",
                "epochs",
                "batch_size",
                "learning_rate",
                "learning_rate_decay",
                "seed",
                "tensorboard",
            ]
        )
    ]
    assert "Traceback" not in outcome.err
