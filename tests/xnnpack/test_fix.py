"""`edgeprune xnnpack-fix`: stock Keras models rewritten to symmetric stride-2 padding, with the
same weights and shapes, the output change reported, the model and manifest written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeprune import _tf
from edgeprune.xnnpack.fix import fix_model
from edgeprune.xnnpack.policy import plan_keras_model
from xnnpack.models import tiny


@pytest.fixture(scope="module")
def stock_features(tmp_path_factory):
    keras = _tf.keras()
    path = tmp_path_factory.mktemp("fix") / "mobilenet_v2.keras"
    keras.applications.MobileNetV2(
        input_shape=(64, 64, 3), alpha=0.35, weights=None, include_top=False, pooling="avg"
    ).save(path)
    return path


def test_fix_rewrites_mobilenet_v2(run_cli, stock_features, tmp_path):
    keras = _tf.keras()
    out = tmp_path / "fixed.keras"
    outcome = run_cli("xnnpack-fix", stock_features, "-o", out, "--json")
    assert outcome.code == 0, outcome.err
    report = json.loads(outcome.out)
    changes = {r["layer"]: r["change"] for r in report["rewrites"]}
    assert changes["Conv1"] == "padding='same' -> ZeroPadding2D(1) + padding='valid'"
    for pad in ("block_1_pad", "block_3_pad", "block_6_pad", "block_13_pad"):
        assert changes[pad] == "padding ((0,1),(0,1)) -> 1 on every side"
    assert report["cluster_ready"] and report["remaining"] == []
    moved = report["output_change"]
    assert moved["samples"] == 16 and moved["max_abs"] > 0 and moved["relative"] > 0

    before = keras.models.load_model(stock_features, compile=False)
    after = keras.models.load_model(out, compile=False)
    assert after.output_shape == before.output_shape
    for layer in before.layers:
        for old, new in zip(
            layer.get_weights(), after.get_layer(layer.name).get_weights(), strict=True
        ):
            np.testing.assert_array_equal(old, new)
    assert after.get_layer("Conv1").padding == "valid"
    assert after.get_layer("block_1_pad").padding == ((1, 1), (1, 1))
    manifest = json.loads((tmp_path / "fixed.keras.json").read_text())
    assert manifest["step"] == "xnnpack-fix" and len(manifest["extra"]["rewrites"]) == 5


def test_text_output_names_the_rewrites(run_cli, tmp_path):
    source = tmp_path / "same_s2.keras"
    tiny("dw_same_s2").save(source)
    outcome = run_cli("xnnpack-fix", source, "-o", tmp_path / "fixed.keras")
    assert outcome.code == 0, outcome.err
    assert "b2_dw" in outcome.out and "outputs moved" in outcome.out
    assert "a sparse cluster can now form" in outcome.out


def test_efficientnet_squeeze_and_excite_loses_its_reshape():
    keras = _tf.keras()
    model = keras.applications.EfficientNetB0(input_shape=(64, 64, 3), weights=None)
    assert not plan_keras_model(model).formed
    fixed = fix_model(model)
    layers = {r.layer for r in fixed.rewrites}
    assert {"stem_conv_pad", "block2a_dwconv_pad", "block1a_se_squeeze"} <= layers
    assert not any(type(layer).__name__ == "Reshape" for layer in fixed.model.layers)
    assert plan_keras_model(fixed.model).formed
    assert fixed.model.output_shape == model.output_shape


def test_mobilenet_v3_still_blocked_is_said():
    keras = _tf.keras()
    model = keras.applications.MobileNetV3Small(
        input_shape=(64, 64, 3), weights=None, include_preprocessing=False
    )
    fixed = fix_model(model)
    assert fixed.rewrites
    plan = plan_keras_model(fixed.model)
    assert not plan.formed
    assert "0-D constant" in plan.problems[0].text()  # hard_sigmoid's `x + 3.0`


@pytest.mark.parametrize(
    ("case", "text"),
    [("missing_dir", "does not exist"), ("tflite_input", ".tflite"), ("bad_suffix", ".keras")],
)
def test_bad_input_is_exit_2_and_nothing_written(run_cli, stock_features, tmp_path, case, text):
    source, out = stock_features, tmp_path / "out.keras"
    if case == "missing_dir":
        out = tmp_path / "nowhere" / "out.keras"
    if case == "tflite_input":
        source = tmp_path / "model.tflite"
        source.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 64)
    if case == "bad_suffix":
        out = tmp_path / "out.h5"
    outcome = run_cli("xnnpack-fix", source, "-o", out)
    assert outcome.code == 2 and outcome.err.startswith("error: ") and text in outcome.err
    assert "Traceback" not in outcome.err
    assert not out.exists() and not out.with_name(out.name + ".json").exists()
