"""`evaluate` and the runner: accuracy, parity between formats, int8 (de)quantization, batching."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_convert_zoo import get_zoo

from edgeprune.errors import UserError
from edgeprune.tflite import TFLiteRunner, evaluate


@pytest.fixture(scope="module")
def zoo(cached_artifact, demo_model_path, digits):
    return get_zoo(cached_artifact, demo_model_path, digits)


def test_fp32_tflite_matches_keras(run_cli, zoo, demo_model_path):
    outcome = run_cli(
        "evaluate",
        zoo.path("dense"),
        "--data",
        "digits",
        "--reference",
        demo_model_path,
        "--json",
    )
    assert outcome.code == 0, outcome.err
    report = json.loads(outcome.out)
    assert report["kind"] == "tflite" and report["samples"] == 359 and report["classes"] == 10
    assert report["top1"] >= 0.9 and report["top5"] >= report["top1"]
    parity = report["reference"]
    assert parity["max_abs_diff"] < 1e-3
    assert parity["top1_agreement"] >= 0.997
    assert parity["reference_top1"] == pytest.approx(report["top1"], abs=0.003)
    assert report["runtime"]["batched"] and report["runtime"]["delegate"] == "xnnpack"


def test_int8_against_float_and_savedmodel_against_keras(zoo, digits):
    int8 = evaluate(zoo.path("pruned-int8"), digits, reference=zoo.path("pruned-dense"))
    assert int8.reference.top1_agreement >= 0.97
    assert 0 < int8.reference.max_abs_diff < 5.0  # quantized logits move, but not wildly
    assert int8.top1 >= int8.reference.reference_top1 - 0.01

    saved = evaluate(zoo.path("pruned-savedmodel"), digits, reference=zoo.path("pruned"))
    assert saved.kind == "savedmodel"
    assert saved.reference.max_abs_diff < 1e-4 and saved.reference.top1_agreement == 1.0


def test_int8_io_runner_quantizes_inputs_and_dequantizes_outputs(zoo, digits):
    float_io = TFLiteRunner(zoo.path("pruned-int8"))
    int8_io = TFLiteRunner(zoo.path("pruned-int8-io"))
    assert int8_io.inputs[0].quantized and int8_io.outputs[0].quantized
    x = digits.x_val[:50]
    expected = float_io.predict(x)
    got = int8_io.predict(x)
    assert got.dtype == np.float32
    # both graphs quantize the same input the same way; only the output rounding differs
    step = int8_io.outputs[0].scale
    assert np.abs(got - expected).max() <= 1.01 * step
    raw = int8_io.run(x[:4], dequantize=False)[0]
    assert raw.dtype == np.int8


def test_batched_run_equals_one_sample_at_a_time(zoo, digits):
    runner = TFLiteRunner(zoo.path("pruned-sparse"))
    assert runner.batch_resizable
    x = digits.x_val[:37]
    batched = runner.predict(x, batch_size=16)  # 16 + 16 + a padded 5
    single = np.concatenate([runner.run(x[i : i + 1])[0] for i in range(len(x))])
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-5)


def test_fixed_batch_model_runs_sample_by_sample(tmp_path, digits):
    from edgeprune import _tf
    from edgeprune.tflite import convert

    keras = _tf.keras()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1), batch_size=1)
    x = keras.layers.Flatten()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    convert(model, tmp_path / "fixed.tflite")
    runner = TFLiteRunner(tmp_path / "fixed.tflite")
    assert not runner.batch_resizable
    outputs = runner.predict(digits.x_val[:7])
    np.testing.assert_allclose(outputs, model.predict(digits.x_val[:7], verbose=0), atol=1e-5)
    with pytest.raises(UserError, match="takes 1 input"):
        runner.run(digits.x_val[:1], digits.x_val[:1])


def test_model_the_xnnpack_delegate_refuses_still_evaluates(zoo, digits, tmp_path):
    """int8 weights stored sparse: convert refuses to write it, but a user may bring one."""
    from edgeprune.tflite.conversion import _run_converter
    from edgeprune.tflite.sources import open_source

    content = _run_converter(open_source(zoo.path("pruned")), "int8", True, "float", digits, 50)
    path = tmp_path / "int8-sparse.tflite"
    path.write_bytes(content)
    report = evaluate(path, digits)
    assert report.runtime["delegate"] == "builtin"
    assert any("without XNNPACK" in note for note in report.notes)
    float_top1 = zoo.manifest("pruned-dense")["accuracy"]["top1"]
    assert report.top1 >= float_top1 - 0.02


def _npz(path: Path, shape: tuple[int, ...], classes: int) -> Path:
    rng = np.random.default_rng(0)
    n = 3 * classes
    np.savez(path, x=rng.random((n, *shape), dtype=np.float32), y=np.arange(n) % classes)
    return path


@pytest.fixture(scope="module")
def small_models(tmp_path_factory) -> dict[str, Path]:
    """Tiny real models whose outputs do not fit the digits task."""
    from edgeprune import _tf

    keras = _tf.keras()
    root = tmp_path_factory.mktemp("small")
    paths = {}
    for name, units, channels in (("five", 5, 1), ("twelve", 12, 1), ("rgb3", 3, 3)):
        inputs = keras.Input((8, 8, channels))
        model = keras.Model(inputs, keras.layers.Dense(units)(keras.layers.Flatten()(inputs)))
        paths[name] = root / f"{name}.keras"
        model.save(paths[name])
    return paths


def test_image_folder_is_resized_to_the_model_input(small_models, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("cat", "dog", "fox"):
        (tmp_path / label).mkdir()
        for i in range(5):
            pixels = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / label / f"{i}.png")
    report = evaluate(small_models["rgb3"], tmp_path)
    assert report.classes == 3 and report.samples == 3 and report.top5 is None
    assert 0.0 <= report.top1 <= 1.0


BAD_EVALUATE = {
    "missing model": (["{tmp}/absent.tflite", "--data", "digits"], "does not exist"),
    "random .tflite": (["{random}", "--data", "digits"], "not a model"),
    "truncated .tflite": (["{truncated}", "--data", "digits"], "damaged"),
    "missing dataset": (["{tflite}", "--data", "{tmp}/none.npz"], "does not exist"),
    "data shape": (["{tflite}", "--data", "{wrong_shape}"], "has samples of shape (4, 4, 1)"),
    "too many classes": (["{five}", "--data", "digits"], "has 10 classes but"),
    "reference outputs differ": (
        ["{tflite}", "--data", "digits", "--reference", "{twelve}"],
        "cannot be compared",
    ),
    "reference missing": (
        ["{tflite}", "--data", "digits", "--reference", "{tmp}/nope.keras"],
        "does not exist",
    ),
    "batch size": (["{tflite}", "--data", "digits", "--batch-size", "0"], "--batch-size"),
}


@pytest.mark.parametrize("case", sorted(BAD_EVALUATE))
def test_bad_evaluate_input_is_one_line(case, run_cli, zoo, small_models, tmp_path):
    random_path = tmp_path / "random.tflite"
    random_path.write_bytes(np.random.default_rng(5).bytes(1024))
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(zoo.path("dense").read_bytes()[:3000])
    names = {
        "tmp": tmp_path,
        "random": random_path,
        "truncated": truncated,
        "tflite": zoo.path("dense"),
        "wrong_shape": _npz(tmp_path / "shape.npz", (4, 4, 1), 10),
        **small_models,
    }
    args, expected = BAD_EVALUATE[case]
    outcome = run_cli("evaluate", *(a.format(**names) for a in args))
    assert outcome.code == 2, outcome
    assert outcome.err.startswith("error: ") and expected in outcome.err, outcome.err
    assert len(outcome.err.strip().splitlines()) == 1 and outcome.out == ""
