"""A `tf.saved_model.save(model, dir)` directory (no Keras metadata) converts WITH its weights.

`from_saved_model` on such a directory keeps the variables as VAR_HANDLE/READ_VARIABLE ops
and writes a few-KB .tflite without weights; convert freezes them through the serving
function instead, reports parity with the source, and refuses any output that holds far
fewer weight bytes than its source.
"""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits):
    """A small digits CNN, trained briefly, as Keras and as a bare SavedModel directory."""
    import keras
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("savedmodel")
    keras.utils.set_random_seed(0)
    inputs = keras.Input(digits.x_train.shape[1:])
    x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    outputs = keras.layers.Dense(digits.num_classes)(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        "adam",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(digits.x_train, digits.y_train, epochs=6, batch_size=64, verbose=0)
    directory = folder / "bare_savedmodel"
    tf.saved_model.save(model, str(directory))
    assert not (directory / "keras_metadata.pb").exists()
    keras_top1 = float(
        np.mean(model.predict(digits.x_val, verbose=0).argmax(axis=1) == digits.y_val)
    )
    return model, directory, keras_top1


def test_convert_keeps_the_weights_and_reports_parity(run_cli, trained, tmp_path, digits):
    from edgeprune.tflite.flatbuffer import read_model
    from edgeprune.tflite.weight_bytes import tflite_weight_bytes

    model, directory, keras_top1 = trained
    target = tmp_path / "bare.tflite"
    outcome = run_cli("convert", directory, "-o", target, "--json")
    assert outcome.code == 0, outcome.err
    report = json.loads(outcome.out)
    weights = model.count_params() * 4
    parsed = read_model(target)
    ops = parsed.op_counts()
    assert "VAR_HANDLE" not in ops and "READ_VARIABLE" not in ops, ops
    assert tflite_weight_bytes(parsed) >= 0.95 * weights
    assert weights <= report["size_bytes"] < weights * 1.2 + 8_000, (report["size_bytes"], weights)
    assert report["weight_bytes"] == tflite_weight_bytes(parsed)
    assert report["parity"]["max_abs_diff"] < 1e-4, report["parity"]
    manifest = json.loads((tmp_path / "bare.tflite.json").read_text())
    assert manifest["extra"]["parity"]["max_abs_diff"] == report["parity"]["max_abs_diff"]
    assert manifest["extra"]["source_weight_bytes"] == weights

    outcome = run_cli("evaluate", target, "--data", "digits", "--json")
    assert outcome.code == 0, outcome.err
    top1 = json.loads(outcome.out)["top1"]
    assert keras_top1 > 0.8 and abs(top1 - keras_top1) < 0.005, (top1, keras_top1)

    keras_file = tmp_path / "same.keras"
    model.save(keras_file)
    outcome = run_cli(
        "evaluate", directory, "--data", "digits", "--reference", keras_file, "--json"
    )
    assert outcome.code == 0, outcome.err
    evaluated = json.loads(outcome.out)
    assert evaluated["kind"] == "savedmodel" and evaluated["top1"] == keras_top1
    assert evaluated["reference"]["max_abs_diff"] < 1e-4

    outcome = run_cli("convert", directory, "-o", tmp_path / "human.tflite")
    assert outcome.code == 0 and "parity with the source: max |diff|" in outcome.out


def test_int8_of_a_savedmodel_calibrates(run_cli, trained, tmp_path):
    _, directory, keras_top1 = trained
    target = tmp_path / "bare-int8.tflite"
    outcome = run_cli(
        "convert", directory, "-o", target, "-q", "int8", "--data", "digits", "--json"
    )
    assert outcome.code == 0, outcome.err
    report = json.loads(outcome.out)
    assert abs(report["accuracy"]["top1"] - keras_top1) < 0.03, report["accuracy"]
    assert report["parity"]["inputs"] == "validation samples"

    outcome = run_cli("convert", directory, "-o", tmp_path / "x.tflite", "-q", "int8")
    assert outcome.code == 2
    assert len(outcome.err.strip().splitlines()) == 1 and "calibration data" in outcome.err


def test_inspect_counts_the_variables(run_cli, trained):
    model, directory, _ = trained
    outcome = run_cli("inspect", directory, "--json")
    assert outcome.code == 0, outcome.err
    report = json.loads(outcome.out)
    assert report["params"] == model.count_params()
    assert len(report["variables"]) == len(model.weights)
    outcome = run_cli("inspect", directory)
    assert f"{model.count_params():,} variable values" in outcome.out


def test_a_weightless_conversion_is_refused_naming_both_sizes(trained, tmp_path):
    """The converter's own from_saved_model path on a bare SavedModel: a real weightless file."""
    import tensorflow as tf

    from edgeprune.errors import UserError
    from edgeprune.tflite.flatbuffer import read_model
    from edgeprune.tflite.sources import open_source
    from edgeprune.tflite.weight_bytes import check_weight_bytes

    _, directory, _ = trained
    weightless = tmp_path / "weightless.tflite"
    weightless.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(directory)).convert())
    parsed = read_model(weightless)
    assert parsed.op_counts().get("VAR_HANDLE", 0) > 0  # the case the check is for
    source = open_source(directory)
    with pytest.raises(UserError) as caught:
        check_weight_bytes(source.weight_bytes, parsed, "none", 0.0, str(directory))
    message = str(caught.value)
    assert f"{source.weight_bytes:,} bytes of variables" in message
    assert "holds " in message and "nothing was written" in message
    assert "\n" not in message
    # int8 stores a quarter, sparse storage drops zeros: still not a weightless file
    with pytest.raises(UserError):
        check_weight_bytes(source.weight_bytes, parsed, "int8", 0.9, str(directory))
    frozen = tmp_path / "frozen.tflite"
    frozen.write_bytes(bytes(source.converter().convert()))
    assert check_weight_bytes(source.weight_bytes, read_model(frozen), "none", 0.0, "x") > 0


def test_savedmodel_without_serving_signature_is_one_line(run_cli, tmp_path):
    import tensorflow as tf

    module = tf.Module()
    module.v = tf.Variable(np.ones((64, 64), np.float32))
    tf.saved_model.save(module, str(tmp_path / "nosig"))
    outcome = run_cli("convert", tmp_path / "nosig", "-o", tmp_path / "n.tflite")
    assert outcome.code == 2
    assert "has no 'serving_default' signature" in outcome.err
    assert len(outcome.err.strip().splitlines()) == 1
    assert not (tmp_path / "n.tflite").exists()
