"""The `qat` recipe step: prune -> qat -> convert int8, and the QAT model's zeros reach the
int8 .tflite."""

from __future__ import annotations

import json

import pytest

RECIPE = """
name: pqat
model: {demo: true, width: 8, train: {epochs: 1}}
data: digits
pipelines:
  pqat:
    prune: {method: oneshot, sparsity: 0.8}
    qat: {epochs: 1}
    convert: {quantize: int8}
devices: [local]
bench: {runs: 3, warmup: 0}
accuracy_budget: null
"""


@pytest.mark.slow
def test_prune_then_qat_then_int8(run_cli, write_recipe, tmp_path):
    from edgeprune.quantize.int8_kernels import int8_kernel_zeros

    recipe = write_recipe(RECIPE)
    workdir = tmp_path / "work"
    outcome = run_cli("run", recipe, "--workdir", workdir, "--db", tmp_path / "r.db", "--json")
    assert outcome.code == 0, outcome.err
    manifests = {
        json.loads(p.read_text())["step"]: p for p in workdir.glob("stages/*/model.*.json")
    }
    qat = json.loads(manifests["qat"].read_text())
    assert qat["extra"]["qat"]["plan"]["quantized"]
    assert qat["sparsity"]["kept"] is True
    converted = json.loads(manifests["convert"].read_text())
    assert converted["options"]["qat"] is True
    tflite = manifests["convert"].parent / "model.tflite"
    zeros = int8_kernel_zeros(tflite)
    assert zeros["all_int8"]
    assert zeros["zero_fraction"] >= 0.79 * qat["sparsity"]["before"]["overall"] / 0.8


def test_qat_without_data_is_refused(run_cli, write_recipe, tmp_path):
    from edgeprune import _tf

    keras = _tf.keras()
    inputs = keras.Input((8, 8, 1))
    keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs))).save(
        tmp_path / "m.keras"
    )
    recipe = write_recipe(
        "name: nodata\nmodel: {file: m.keras}\npipelines:\n  q:\n    qat: {epochs: 1}\n"
        "    convert: {quantize: none}\ndevices: [local]\naccuracy_budget: null\n"
    )
    outcome = run_cli("run", recipe, "--json")
    assert outcome.code != 0
    assert "qat trains on data.train" in outcome.err


KEEP_FLOAT_RECIPE = """
name: selective
model: {demo: true, width: 8, train: {epochs: 1}}
data: digits
pipelines:
  selective:
    convert: {quantize: int8, keep_float: [classifier]}
  full:
    convert: {quantize: int8}
devices: [local]
bench: {runs: 3, warmup: 0}
accuracy_budget: null
"""


@pytest.mark.slow
def test_keep_float_in_a_recipe_leaves_that_layer_float(run_cli, write_recipe, tmp_path):
    """`keep_float:` runs end to end inside a recipe: the converted file holds the named
    layer in float (read back from the file) and the fully int8 variant beside it does not."""
    recipe = write_recipe(KEEP_FLOAT_RECIPE)
    workdir = tmp_path / "work"
    outcome = run_cli("run", recipe, "--workdir", workdir, "--db", tmp_path / "r.db", "--json")
    assert outcome.code == 0, outcome.err
    converted = [
        json.loads(p.read_text())
        for p in workdir.glob("stages/*/model.*.json")
        if json.loads(p.read_text())["step"] == "convert"
    ]
    by_globs = {tuple(m["options"]["keep_float"]): m for m in converted}
    assert set(by_globs) == {("classifier",), ()}
    assert by_globs[("classifier",)]["extra"]["float_layers"] == ["classifier"]
    assert by_globs[("classifier",)]["extra"]["keep_float_matched"] == ["classifier"]
    assert by_globs[()]["extra"]["float_layers"] == []
