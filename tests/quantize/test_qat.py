"""QAT on a tiny digits CNN: the int8 .tflite matches the QAT model, pruned zeros survive
into the int8 kernels, the file round-trips, the CLI runs end to end, errors are one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeprune.errors import UserError


def tflite_outputs(path, x):
    from edgeprune.tflite.predictors import TFLitePredictor

    return TFLitePredictor(path, str(path)).predict_all(x)[0]


@pytest.fixture(scope="module")
def qat_path(small_model_path, tmp_path_factory):
    from edgeprune.quantize.pipeline import qat_file

    out = tmp_path_factory.mktemp("qat") / "small-qat.keras"
    target, report = qat_file(small_model_path, out, data="digits", epochs=2)
    return target, report


def test_int8_tflite_of_the_qat_model_agrees_with_it(qat_path, digits, tmp_path):
    from edgeprune.models import load_keras_model
    from edgeprune.quantize.int8_kernels import int8_kernel_zeros
    from edgeprune.tflite.conversion import convert

    path, report = qat_path
    assert report.plan["folded"] == {"stem_bn": "stem"}
    assert report.plan["fused"] == {"stem_relu": "stem", "dw_relu": "dw"}
    out = tmp_path / "qat.tflite"
    converted = convert(path, out, quantize="int8", data="digits")
    assert any("QAT model" in note for note in converted.notes)
    assert json.loads((tmp_path / "qat.tflite.json").read_text())["options"]["qat"] is True
    assert int8_kernel_zeros(out)["all_int8"]
    qat = load_keras_model(path)
    keras_out = qat.predict(digits.x_val, verbose=0)
    lite_out = tflite_outputs(out, digits.x_val)
    agreement = np.mean(keras_out.argmax(1) == lite_out.argmax(1))
    assert agreement >= 0.99, agreement
    assert np.abs(keras_out - lite_out).max() < 0.1
    # parity in the report is against the QAT model itself
    assert converted.parity is not None
    assert converted.accuracy["top1"] >= converted.accuracy["source_top1"] - 0.01


def test_learned_ranges_are_the_int8_scales(qat_path, tmp_path):
    """The converter takes the classifier's input range from its FakeQuant, not calibration."""
    from edgeprune.models import load_keras_model
    from edgeprune.tflite.conversion import convert
    from edgeprune.tflite.flatbuffer import read_model

    path, _ = qat_path
    out = tmp_path / "qat.tflite"
    convert(path, out, quantize="int8", data="digits", calibration_samples=1)
    quantizer = load_keras_model(path).get_layer("gap_quant")
    low, high = float(quantizer.range_min.numpy()), float(quantizer.range_max.numpy())
    graph = read_model(out).main
    (mean,) = [op for op in graph.operators if op.opcode == "MEAN"]
    scale = graph.tensors[mean.outputs[0]].quantization.scale[0]
    assert scale == pytest.approx((high - low) / 255, rel=1e-3)


@pytest.mark.slow
def test_pruned_zeros_stay_zero_in_the_int8_kernels(pruned_model_path, tmp_path):
    from edgeprune.keras_stats import model_stats
    from edgeprune.models import load_keras_model
    from edgeprune.quantize.int8_kernels import int8_kernel_zeros
    from edgeprune.quantize.pipeline import qat_file
    from edgeprune.tflite.conversion import convert

    pruned = model_stats(load_keras_model(pruned_model_path))
    assert pruned.kernel_sparsity >= 0.79
    target, report = qat_file(pruned_model_path, tmp_path / "pqat.keras", data="digits", epochs=1)
    assert report.sparsity["kept"]
    assert report.sparsity["overall"] >= pruned.kernel_sparsity - 1e-9
    convert(target, tmp_path / "pqat.tflite", quantize="int8", data="digits")
    zeros = int8_kernel_zeros(tmp_path / "pqat.tflite")
    assert zeros["all_int8"]
    assert zeros["zero_fraction"] >= 0.795, zeros


@pytest.mark.slow
def test_without_preserve_sparsity_training_refills_the_zeros(pruned_model_path, tmp_path):
    from edgeprune.quantize.pipeline import qat_file

    _, report = qat_file(
        pruned_model_path,
        tmp_path / "refilled.keras",
        data="digits",
        epochs=1,
        preserve_sparsity=False,
        learning_rate=1e-3,
    )
    assert report.sparsity["overall"] < 0.5


def test_the_qat_file_round_trips(qat_path, digits, tmp_path):
    from edgeprune.models import load_keras_model
    from edgeprune.qat_layers import QatKernel, is_qat_model

    path, _ = qat_path
    loaded = load_keras_model(path)
    assert is_qat_model(loaded)
    assert isinstance(loaded.get_layer("stem"), QatKernel)
    again = tmp_path / "again.keras"
    loaded.save(again)
    reloaded = load_keras_model(again)
    np.testing.assert_array_equal(
        loaded.predict(digits.x_val[:64], verbose=0), reloaded.predict(digits.x_val[:64], verbose=0)
    )
    manifest = json.loads((path.parent / (path.name + ".json")).read_text())
    assert manifest["step"] == "qat" and manifest["quantization"] == "qat-int8"
    assert manifest["extra"]["qat"]["plan"]["quantized"] == [
        "stem",
        "dw",
        "pw",
        "conv",
        "classifier",
    ]


def test_the_input_model_is_untouched(small_model_path, digits):
    from edgeprune.models import load_keras_model
    from edgeprune.quantize.qat import quantize_aware

    model = load_keras_model(small_model_path)
    before = [w.copy() for w in model.get_weights()]
    qat = quantize_aware(model)
    qat.compile("adam", "sparse_categorical_crossentropy")
    qat.fit(digits.x_train[:64], digits.y_train[:64], epochs=1, verbose=0)
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


@pytest.mark.slow
def test_cli_end_to_end(run_cli, small_model_path, tmp_path):
    out = tmp_path / "cli-qat.keras"
    done = run_cli(
        "qat", small_model_path, "-o", out, "--data", "digits", "--epochs", "1", "--json"
    )
    assert done.code == 0, done.err
    report = json.loads(done.out)
    assert report["output"] == str(out) and out.exists()
    assert report["accuracy"]["epochs"] == 1
    converted = run_cli(
        "convert", out, "-o", tmp_path / "cli.tflite", "--quantize", "int8", "--data", "digits"
    )
    assert converted.code == 0, converted.err
    assert "QAT model" in converted.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--epochs", "0"), "--epochs must be >= 1"),
        (("--learning-rate", "5"), "--learning-rate must be in (0, 1)"),
    ],
)
def test_cli_bad_options_are_one_line(run_cli, small_model_path, tmp_path, args, message):
    out = tmp_path / "bad.keras"
    done = run_cli("qat", small_model_path, "-o", out, "--data", "digits", *args)
    assert done.code != 0
    assert message in done.err and len(done.err.strip().splitlines()) == 1
    assert not out.exists()


def test_data_that_does_not_fit_is_refused_before_training(run_cli, small_model_path, tmp_path):
    data = tmp_path / "wide.npz"
    np.savez(data, x=np.zeros((8, 16, 16, 1), np.float32), y=np.zeros(8, np.int64))
    done = run_cli("qat", small_model_path, "-o", tmp_path / "o.keras", "--data", data)
    assert done.code != 0 and "has samples of shape (16, 16, 1)" in done.err
    assert not (tmp_path / "o.keras").exists()


def test_missing_data_is_refused(run_cli, small_model_path, tmp_path):
    done = run_cli("qat", small_model_path, "-o", tmp_path / "o.keras")
    assert done.code != 0 and "--data" in done.err


def test_an_already_qat_model_is_refused(qat_path, tmp_path, run_cli):
    path, _ = qat_path
    done = run_cli("qat", path, "-o", tmp_path / "twice.keras", "--data", "digits")
    assert done.code != 0 and "already quantization-aware" in done.err


def test_unsupported_layers_are_named():
    from edgeprune import _tf
    from edgeprune.quantize.qat import wrap

    keras = _tf.keras()
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.LayerNormalization(name="norm")(x)
    model = keras.Model(inputs, keras.layers.Flatten()(x))
    with pytest.raises(UserError, match=r"cannot quantize norm \(LayerNormalization\)"):
        wrap(model)


def test_a_model_without_kernels_is_refused():
    from edgeprune import _tf
    from edgeprune.quantize.qat import wrap

    keras = _tf.keras()
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    with pytest.raises(UserError, match="no Conv2D, DepthwiseConv2D or Dense"):
        wrap(model)


def test_python_verb(small_model_path, digits):
    import edgeprune as ep

    result = ep.qat(str(small_model_path), data="digits", epochs=1)
    assert result.to_dict()["plan"]["quantized"]
    assert "QatResult" in repr(result)
    with pytest.raises(UserError, match="learning_rate"):
        ep.qat(str(small_model_path), data="digits", learning_rate=0.0)


def test_distilled_qat_saves_a_model_without_the_distillation_loss(small_model_path, tmp_path):
    import zipfile

    from edgeprune.quantize.pipeline import qat_file

    out = tmp_path / "distilled-qat.keras"
    target, report = qat_file(
        small_model_path, out, data="digits", epochs=1, distill=True, temperature=2.0, alpha=0.7
    )
    assert report.training["distill"] == {"temperature": 2.0, "alpha": 0.7}
    config = json.loads(zipfile.ZipFile(target).read("config.json"))
    assert "istill" not in json.dumps(config.get("compile_config"))  # the plain task loss
    assert report.sparsity["kept"]
