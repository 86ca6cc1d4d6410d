"""`evaluate` and `convert` beyond classifiers: real Keras models, real .tflite files, real runtime.

A two-output regression model (the converter stores its outputs in another order than Keras),
parity per output, x-only data (parity alone; int8 calibration from x), and the task's line.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeprune.data import Dataset
from edgeprune.errors import UserError
from edgeprune.tflite import convert, evaluate
from edgeprune.tflite.predictors import load_predictor


def _two_outputs(seed: int = 0):
    from edgeprune import _tf

    keras = _tf.keras()
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,), name="features")
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    speed = keras.layers.Dense(3, name="speed")(hidden)
    angle = keras.layers.Dense(1, name="angle")(hidden)
    return keras.Model(inputs, [speed, angle], name="two_heads")


@pytest.fixture(scope="module")
def two_heads(tmp_path_factory):
    """The model, its .keras and fp32 .tflite files, and labels that are its outputs + noise."""
    folder = tmp_path_factory.mktemp("two_heads")
    model = _two_outputs()
    keras_path = folder / "two_heads.keras"
    model.save(keras_path)
    tflite_path = folder / "two_heads.tflite"
    convert(keras_path, tflite_path)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 6)).astype(np.float32)
    speed, angle = (np.asarray(o) for o in model.predict(x, verbose=0))
    y = {
        "speed": speed + rng.normal(scale=0.1, size=speed.shape).astype(np.float32),
        "angle": angle + rng.normal(scale=0.2, size=angle.shape).astype(np.float32),
    }
    data = Dataset(
        "heads",
        x[:80],
        {k: v[:80] for k, v in y.items()},
        x[80:],
        {k: v[80:] for k, v in y.items()},
        [],
    )
    return model, keras_path, tflite_path, data


def test_tflite_outputs_come_back_in_keras_order(two_heads):
    _model, keras_path, tflite_path, data = two_heads
    predictor = load_predictor(tflite_path)
    # the converter writes the [N, 1] head first; the signature puts it back second
    assert [s.shape[1:] for s in predictor.runner.outputs] == [(1,), (3,)]
    assert [o.shape for o in predictor.outputs] == [(None, 3), (None, 1)]
    ours = predictor.predict_all(data.x_val)
    theirs = load_predictor(keras_path).predict_all(data.x_val)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_regression_per_output_keras_and_tflite(two_heads):
    model, keras_path, tflite_path, data = two_heads
    keras_report = evaluate(model, data)
    assert keras_report.task == "regression" and keras_report.top1 is None
    metrics = keras_report.metrics
    assert metrics["rmse/speed"] == pytest.approx(0.1, rel=0.3)
    assert metrics["rmse/angle"] == pytest.approx(0.2, rel=0.3)
    assert metrics["rmse"] == pytest.approx((metrics["rmse/speed"] + metrics["rmse/angle"]) / 2)
    assert [m["name"] for m in keras_report.metric_info] == ["rmse", "mae", "r2"]

    report = evaluate(tflite_path, data, reference=keras_path)
    assert report.kind == "tflite" and report.task == "regression"
    for key, value in metrics.items():
        assert report.metrics[key] == pytest.approx(value, abs=1e-4)
    parity = report.reference
    assert [o.name for o in parity.outputs] == ["speed", "angle"]
    assert parity.max_abs_diff < 1e-4 and parity.top1_agreement is None
    assert parity.reference_metrics["rmse"] == pytest.approx(metrics["rmse"], abs=1e-4)


def test_x_only_data_gives_parity_alone(two_heads):
    _model, keras_path, tflite_path, data = two_heads
    x_only = Dataset("x_only", data.x_train, None, data.x_val, None, [])
    report = evaluate(tflite_path, x_only, reference=keras_path)
    assert report.task is None and report.metrics == {}
    assert report.reference.max_abs_diff < 1e-4
    assert any("no labels" in note for note in report.notes)
    with pytest.raises(UserError) as caught:
        evaluate(tflite_path, x_only)
    assert "no labels" in str(caught.value) and caught.value.params == ("reference",)


def test_a_named_task_that_does_not_fit_is_one_line(two_heads):
    model, _keras_path, _tflite_path, data = two_heads
    with pytest.raises(UserError) as caught:
        evaluate(model, data, task="segmentation")
    assert "\n" not in str(caught.value) and "2 outputs" in str(caught.value)


def test_int8_calibrated_from_x_alone(two_heads, tmp_path):
    _model, keras_path, _tflite_path, data = two_heads
    x_only = Dataset("x_only", data.x_train, None, data.x_val, None, [])
    report = convert(keras_path, tmp_path / "int8.tflite", quantize="int8", dataset=x_only)
    assert report.accuracy == {
        "dataset": "x_only",
        "note": "dataset 'x_only' has no labels: calibration only, no accuracy",
    }
    parity = evaluate(tmp_path / "int8.tflite", x_only, reference=keras_path).reference
    spread = float(
        np.abs(
            np.concatenate([o.ravel() for o in load_predictor(keras_path).predict_all(data.x_val)])
        ).max()
    )
    assert 0 < parity.mean_abs_diff < 0.03 * spread  # quantized, but calibrated to the range


def test_convert_scores_the_task(two_heads, tmp_path):
    _model, keras_path, _tflite_path, data = two_heads
    report = convert(keras_path, tmp_path / "fp32.tflite", dataset=data)
    accuracy = report.accuracy
    assert accuracy["task"] == "regression" and "top1" not in accuracy
    assert accuracy["metrics"]["rmse"] == pytest.approx(
        accuracy["source_metrics"]["rmse"], abs=1e-4
    )
    manifest = json.loads((tmp_path / "fp32.tflite.json").read_text())
    assert manifest["accuracy"]["metrics"]["rmse"] == pytest.approx(accuracy["metrics"]["rmse"])


def test_numbered_tflite_outputs_take_the_label_names_by_shape(two_heads):
    _model, _keras_path, tflite_path, data = two_heads
    report = evaluate(tflite_path, data)  # no Keras reference to name the outputs
    assert report.task == "regression"
    assert {"rmse/speed", "rmse/angle"} <= set(report.metrics)


@pytest.fixture(scope="module")
def small_classifier(tmp_path_factory):
    """A 12-class softmax MLP (untrained) and an .npz of integer class ids."""
    from edgeprune import _tf

    keras = _tf.keras()
    keras.utils.set_random_seed(1)
    folder = tmp_path_factory.mktemp("classifier")
    inputs = keras.Input((5,))
    outputs = keras.layers.Dense(12, activation="softmax")(keras.layers.Dense(8)(inputs))
    path = folder / "clf.keras"
    keras.Model(inputs, outputs).save(path)
    rng = np.random.default_rng(0)
    data = folder / "ids.npz"
    np.savez(data, x=rng.normal(size=(100, 5)).astype(np.float32), y=rng.integers(0, 12, 100))
    return path, data


def test_cli_shows_the_task_metrics(run_cli, small_classifier):
    model, data = small_classifier
    outcome = run_cli("evaluate", model, "--data", data, "--json")
    assert outcome.code == 0, outcome.err
    report = json.loads(outcome.out)
    assert report["task"] == "classification" and report["classes"] == 12
    assert report["metrics"]["top1"] == report["top1"] and report["top5"] is not None
    human = run_cli("evaluate", model, "--data", data)
    assert human.code == 0, human.err
    first = " ".join(human.out.split())
    assert f"top-1 {report['top1'] * 100:.2f} %" in first and "12 classes" in first


def test_cli_task_mistakes_are_one_line(run_cli, small_classifier):
    model, data = small_classifier
    outcome = run_cli("evaluate", model, "--data", data, "--task", "custom")
    assert outcome.code == 2 and "--metric" in outcome.err
    assert len(outcome.err.strip().splitlines()) == 1
    outcome = run_cli("evaluate", model, "--data", data, "--task", "segmentation")
    assert outcome.code == 2 and len(outcome.err.strip().splitlines()) == 1
    assert "segmentation needs masks" in outcome.err


def test_savedmodel_of_two_heads_answers_in_keras_order(two_heads, tmp_path):
    model, keras_path, _tflite_path, data = two_heads
    exported = tmp_path / "two_heads_saved"
    model.export(exported, verbose=False)
    predictor = load_predictor(exported)
    assert predictor.kind == "savedmodel"
    assert [o.shape for o in predictor.outputs] == [(None, 3), (None, 1)]
    report = evaluate(exported, data, reference=keras_path)
    assert report.task == "regression" and report.reference.max_abs_diff < 1e-5
    assert [o.name for o in report.reference.outputs] == ["speed", "angle"]


def test_named_tflite_outputs_are_matched_by_name(two_heads, tmp_path):
    """A .tflite whose signature keeps the outputs' names (here in alphabetical order, not the
    Keras order) is compared with the Keras model output by output, by name."""
    from edgeprune import _tf

    tf = _tf.tf()
    model, keras_path, _tflite_path, data = two_heads

    keras = _tf.keras()

    def serve(features):
        speed, angle = model(features)
        return {"speed": speed, "angle": angle}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", serve, input_signature=[tf.TensorSpec((None, 6), tf.float32)])
    saved = tmp_path / "named_saved"
    archive.write_out(str(saved), verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    path = tmp_path / "named.tflite"
    path.write_bytes(converter.convert())
    predictor = load_predictor(path)
    assert [o.name for o in predictor.outputs] == ["angle", "speed"]
    report = evaluate(path, data, reference=keras_path)
    assert [o.name for o in report.reference.outputs] == ["angle", "speed"]
    assert report.reference.max_abs_diff < 1e-4
    assert report.metrics["rmse/speed"] == pytest.approx(
        evaluate(model, data).metrics["rmse/speed"], abs=1e-4
    )


def test_non_finite_outputs_are_one_line(two_heads):
    """NaN outputs (a weightless conversion reading uninitialised variables, an overflow)
    are refused in one line instead of a scoring library's traceback."""
    from edgeprune import _tf

    keras = _tf.keras()
    _model, _keras_path, _tflite_path, data = two_heads
    inputs = keras.Input((6,))
    speed = keras.layers.Dense(3, name="speed")(inputs)
    angle = keras.layers.Lambda(lambda t: keras.ops.log(t * 0.0 - 1.0), name="angle")(
        keras.layers.Dense(1)(inputs)
    )
    broken = keras.Model(inputs, [speed, angle])
    with pytest.raises(UserError) as caught:
        evaluate(broken, data)
    message = str(caught.value)
    assert "gives 40 non-finite value(s) (output 1)" in message and "\n" not in message
