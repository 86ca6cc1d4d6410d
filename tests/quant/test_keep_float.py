"""Selective int8 (`--keep-float`) and int16x8, read back from the written flatbuffer."""

from __future__ import annotations

import json

import pytest

from edgeprune.errors import UserError
from edgeprune.tflite.conversion import convert
from edgeprune.tflite.flatbuffer import read_model
from edgeprune.tflite.quant_debug import keras_layer_names, layers_of
from edgeprune.tflite.sources import open_source

COMPUTE = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _compute_ops(path, names):
    """(layers, output dtype, weight dtype) of each conv / FC op of a .tflite."""
    model = read_model(path)
    graph = model.main
    found = []
    for op in graph.operators:
        if op.opcode not in COMPUTE:
            continue
        out = graph.tensors[op.outputs[0]]
        weights = graph.tensors[op.inputs[1]]
        layers = layers_of([out.name], names) or layers_of([weights.name], names)
        found.append((layers[0], out.dtype, weights.dtype))
    return found


@pytest.fixture(scope="module")
def layer_names(small_model_path):
    return keras_layer_names(open_source(small_model_path).keras_model)


def test_keep_float_leaves_exactly_the_matched_layers_float(
    small_model_path, digits, layer_names, tmp_path
):
    out = tmp_path / "kf.tflite"
    report = convert(
        small_model_path,
        out,
        quantize="int8",
        dataset=digits,
        calibration_samples=30,
        keep_float=["block2_pw,classif*"],
    )
    ops = _compute_ops(out, layer_names)
    assert {layer for layer, _, _ in ops} == {
        "stem_conv", "block1_dw", "block1_pw", "block2_dw", "block2_pw", "block3_dw",
        "block3_pw", "classifier",
    }  # fmt: skip
    for layer, out_type, weight_type in ops:
        kept = layer in ("block2_pw", "classifier")
        assert (out_type, weight_type) == (("FLOAT32", "FLOAT32") if kept else ("INT8", "INT8")), (
            layer
        )
    assert report.keep_float == ["block2_pw", "classif*"]
    assert report.float_layers == ["block2_pw", "block2_pw_bn", "block2_pw_relu", "classifier"]
    manifest = json.loads(out.with_name(out.name + ".json").read_text())
    assert manifest["options"]["keep_float"] == ["block2_pw", "classif*"]
    assert manifest["extra"]["float_layers"] == report.float_layers
    assert report.accuracy is not None and report.accuracy["top1"] > 0.3


def test_int16x8_has_16_bit_activations_and_xnnpack_does_not_take_it(
    small_model_path, digits, layer_names, tmp_path
):
    from edgeprune.tflite.evaluation import evaluate
    from edgeprune.workflows.inspection import inspect_tflite

    out = tmp_path / "i16.tflite"
    report = convert(
        small_model_path, out, quantize="int16x8", dataset=digits, calibration_samples=30
    )
    assert report.quantize == "int16x8"
    for _layer, out_type, weight_type in _compute_ops(out, layer_names):
        assert (out_type, weight_type) == ("INT16", "INT8")
    facts = inspect_tflite(out)
    assert facts["quantization"] == "int16x8"
    assert not facts["xnnpack"]["eligible"]
    assert "XNNPACK has no int16x8 kernels" in facts["xnnpack"]["reasons"][0]
    manifest = json.loads(out.with_name(out.name + ".json").read_text())
    assert manifest["quantization"] == "int16x8"
    scored = evaluate(out, digits, reference=small_model_path)
    assert scored.top1 is not None and scored.reference is not None
    assert scored.reference.top1_agreement > 0.9


@pytest.mark.slow
def test_the_agent_says_xnnpack_does_not_run_int16x8(small_model_path, digits, tmp_path):
    from edgeprune.fleet.options import BenchOptions
    from edgeprune.workflows.bench import bench_models

    int16 = tmp_path / "i16.tflite"
    int8 = tmp_path / "i8.tflite"
    convert(small_model_path, int16, quantize="int16x8", dataset=digits, calibration_samples=20)
    convert(small_model_path, int8, quantize="int8", dataset=digits, calibration_samples=20)
    run = bench_models([int8, int16], options=BenchOptions.create(runs=5, warmup=1), store=None)
    run.raise_for_failures()
    codes = {r["model"]: set(r.get("warnings") or []) for r in run.rows}
    assert "int16x8_without_xnnpack" in codes["i16.tflite"]
    assert "int16x8_without_xnnpack" not in codes["i8.tflite"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"keep_float": ["stem_conv"]}, "keep_float needs quantize int8"),
        ({"quantize": "float16", "keep_float": "a"}, "keep_float needs quantize int8"),
        (
            {"quantize": "int8", "io": "int8", "keep_float": ["stem_conv"]},
            "keep_float cannot go with io int8",
        ),
        ({"quantize": "int16x8", "io": "int8"}, "io int8 cannot go with quantize int16x8"),
        (
            {"quantize": "int8", "keep_float": "a", "sparse_weights": True},
            "keep_float cannot go with sparse_weights",
        ),
        ({"quantize": "int8", "keep_float": [3]}, "keep_float takes layer-name globs"),
    ],
)
def test_option_errors_are_one_line_naming_the_parameter(values, message):
    from edgeprune.tflite.options import ConvertOptions

    with pytest.raises(UserError) as caught:
        ConvertOptions.create(**values)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
    assert caught.value.params[0] in values


def test_a_glob_that_matches_nothing_lists_layer_names(small_model_path, digits, tmp_path):
    out = tmp_path / "none.tflite"
    with pytest.raises(UserError, match=r"keep_float 'conv\*' matches no layer of .*stem_conv"):
        convert(small_model_path, out, quantize="int8", dataset=digits, keep_float=["conv*"])
    assert not out.exists() and not out.with_name(out.name + ".json").exists()


@pytest.mark.slow
def test_cli_keep_float_and_its_errors(run_cli, small_model_path, tmp_path):
    out = tmp_path / "cli.tflite"
    done = run_cli(
        "convert", small_model_path, "-o", out, "-q", "int8", "--data", "digits",
        "--calibration-samples", "20", "--keep-float", "classifier", "--json",
    )  # fmt: skip
    assert done.code == 0, done.err
    assert json.loads(done.out)["float_layers"] == ["classifier"]
    bad = run_cli("convert", small_model_path, "-o", out, "--keep-float", "classifier")
    assert bad.code != 0 and bad.err.strip().splitlines() == [
        "error: --keep-float needs --quantize int8 (it keeps some layers float in an int8 "
        "model), not --quantize none"
    ]
    bad = run_cli("convert", small_model_path, "-o", out, "-q", "int16x8", "--io", "int8")
    assert bad.code != 0 and "--io int8 cannot go with --quantize int16x8" in bad.err


def test_a_recipe_convert_step_takes_keep_float(tmp_path):
    from edgeprune.recipes import load_recipe

    base = "model: {demo: true, width: 8, train: {epochs: 1}}\ndata: digits\nsteps:\n"
    good = tmp_path / "good.yaml"
    good.write_text(base + "  convert: {quantize: int8, keep_float: [classifier, 'stem*']}\n")
    (variant,) = load_recipe(good).variants
    assert variant.steps[-1].options["keep_float"] == ["classifier", "stem*"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(base + "  convert: {quantize: float16, keep_float: [classifier]}\n")
    with pytest.raises(UserError, match="keep_float needs quantize int8"):
        load_recipe(bad)
