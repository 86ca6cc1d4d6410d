"""XNNPACK's sparse path end to end, through the CLI: prune --policy xnnpack -> convert -> inspect."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeprune.xnnpack import check_sparse_path
from xnnpack.models import rules_mobilenet


def _ok(outcome) -> str:
    assert outcome.code == 0, outcome.err
    return outcome.out


def _section(run_cli, model: Path) -> dict:
    return json.loads(_ok(run_cli("inspect", model, "--json")))["xnnpack"]


@pytest.fixture(scope="module")
def rules_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "rules_mobilenet.keras"
    rules_mobilenet().save(path)
    return path


@pytest.fixture(scope="module")
def pruned_85(rules_model, tmp_path_factory) -> Path:
    from edgeprune.cli.app import run

    out = tmp_path_factory.mktemp("p85") / "p85.keras"
    args = ["prune", str(rules_model), "-o", str(out), "--sparsity", "0.85", "--policy", "xnnpack"]
    assert run(args) == 0
    return out


def test_rules_mobilenet_pruned_to_85_is_eligible(run_cli, pruned_85, tmp_path):
    tflite = tmp_path / "p85.tflite"
    _ok(run_cli("convert", pruned_85, "-o", tflite, "--sparse-weights"))
    section = _section(run_cli, tflite)
    assert section["eligible"], section["reasons"]
    assert section["sparse_weights_stored"] and section["reasons"] == []
    assert section["zero_fraction"] == pytest.approx(0.85, abs=0.01)
    (cluster,) = [c for c in section["clusters"] if c["sparse"]]
    assert cluster["start"] == [min(cluster["ops"])] and len(cluster["pointwise_ops"]) > 10
    text = _ok(run_cli("inspect", tflite))
    assert "XNNPACK sparse path" in text and "eligible: 1 sparse cluster" in text


def test_the_same_at_60_percent_is_not(run_cli, rules_model, tmp_path):
    keras_out, tflite = tmp_path / "p60.keras", tmp_path / "p60.tflite"
    _ok(run_cli("prune", rules_model, "-o", keras_out, "--sparsity", "0.6", "--policy", "xnnpack"))
    _ok(run_cli("convert", keras_out, "-o", tflite, "--sparse-weights"))
    section = _section(run_cli, tflite)
    assert not section["eligible"] and section["sparse_weights_stored"]
    assert section["zero_fraction"] == pytest.approx(0.6, abs=0.01)
    assert [p["code"] for p in section["problems"]] == ["zeros"]
    assert "only above 2/3" in section["reasons"][0]


def test_stored_dense_it_is_not(run_cli, pruned_85, tmp_path):
    tflite = tmp_path / "p85-dense.tflite"
    _ok(run_cli("convert", pruned_85, "-o", tflite, "--dense-weights"))
    section = _section(run_cli, tflite)
    assert not section["eligible"] and not section["sparse_weights_stored"]
    assert [p["code"] for p in section["problems"]] == ["storage"]
    assert "DENSIFY" in section["reasons"][0]


def test_as_int8_it_is_not(tiny_tflite):
    # the same MobileNet-style body as above, smaller: int8 conversion is the costly one
    report = check_sparse_path(tiny_tflite("base", fraction=0.85, sparse=False, quantize="int8"))
    assert not report.eligible and report.quantization == "int8"
    assert report.problems[0].code == "dtype" and "int8" in report.reasons[0]


@pytest.fixture(scope="module")
def stock(tmp_path_factory) -> Path:
    from edgeprune import _tf

    keras = _tf.keras()
    path = tmp_path_factory.mktemp("stock") / "mobilenet_v2.keras"
    model = keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10
    )
    model.save(path)
    return path


def test_stock_mobilenet_v2_is_not_eligible_and_the_layer_is_named(run_cli, stock, tmp_path):
    refused = run_cli(
        "prune", stock, "-o", tmp_path / "x.keras", "--sparsity", "0.85", "--policy", "xnnpack"
    )
    assert refused.code == 2 and "layer 'Conv1' (Conv2D)" in refused.err
    assert "xnnpack-fix" in refused.err
    tflite = tmp_path / "stock.tflite"
    _ok(run_cli("convert", stock, "-o", tflite))
    section = _section(run_cli, tflite)
    assert not section["eligible"]
    first = section["problems"][0]
    assert first["label"] == "CONV_2D #0 (Conv1)" and "stride-2 SAME padding" in first["message"]
    assert any("block_1_depthwise" in r for r in section["reasons"])


def test_stock_after_xnnpack_fix_and_pruning_is_eligible(run_cli, stock, tmp_path):
    fixed, pruned, tflite = tmp_path / "fixed.keras", tmp_path / "p.keras", tmp_path / "p.tflite"
    report = json.loads(_ok(run_cli("xnnpack-fix", stock, "-o", fixed, "--json")))
    assert report["cluster_ready"] and {"Conv1", "block_1_pad"} <= {
        r["layer"] for r in report["rewrites"]
    }
    _ok(run_cli("prune", fixed, "-o", pruned, "--sparsity", "0.85", "--policy", "xnnpack"))
    _ok(run_cli("convert", pruned, "-o", tflite, "--sparse-weights"))
    section = _section(run_cli, tflite)
    assert section["eligible"], section["reasons"]


def test_digits_demo_pruned_with_the_policy_is_eligible(run_cli, demo_model_path, tmp_path):
    pruned, tflite = tmp_path / "demo.keras", tmp_path / "demo.tflite"
    run = json.loads(
        _ok(
            run_cli(
                "prune",
                demo_model_path,
                "-o",
                pruned,
                "--sparsity",
                "0.85",
                "--policy",
                "xnnpack",
                "--json",
            )
        )
    )
    assert {k["layer"] for k in run["report"]["kernels"]} == {
        "block1_pw",
        "block2_pw",
        "block3_pw",
    }
    _ok(run_cli("convert", pruned, "-o", tflite))  # >= 50 % zero: stored sparse by default
    assert _section(run_cli, tflite)["eligible"]


def test_policy_fine_tunes_with_data(run_cli, demo_model_path, tmp_path):
    from edgeprune import _tf

    out = tmp_path / "tuned.keras"
    run = json.loads(
        _ok(
            run_cli(
                "prune",
                demo_model_path,
                "-o",
                out,
                "--sparsity",
                "0.85",
                "--policy",
                "xnnpack",
                "--data",
                "digits",
                "--epochs",
                "1",
                "--json",
            )
        )
    )
    assert run["mode"] == "gradual" and run["accuracy"]["top1"] > 0.5
    model = _tf.keras().models.load_model(out, compile=False)
    for name in ("block1_pw", "block2_pw", "block3_pw"):
        kernel = model.get_layer(name).get_weights()[0]
        assert 1 - np.count_nonzero(kernel) / kernel.size == pytest.approx(0.85, abs=0.01)
    for name in ("stem_conv", "classifier"):
        assert (
            np.count_nonzero(model.get_layer(name).get_weights()[0])
            == model.get_layer(name).get_weights()[0].size
        )
