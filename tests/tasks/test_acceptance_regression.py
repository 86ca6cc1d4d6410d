"""Issue 15 acceptance: a regression MLP is evaluated in its own units and int8-calibrated from x.

A Dense MLP trained with MSE on a generated target (tests/support/task_models.py): evaluate
reports RMSE (deciding), MAE and R² for the Keras model and its .tflite, with parity; the
int8 conversion is calibrated from an .npz that holds only `x`.
"""

from __future__ import annotations

import numpy as np
import pytest
from support.task_models import regression_data, regression_mlp

from edgeprune.tflite import convert, evaluate

TRAIN = 480


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    x, y = regression_data(600, seed=5)
    model = regression_mlp()
    model.fit(x[:TRAIN], y[:TRAIN], epochs=20, batch_size=32, verbose=0)
    folder = tmp_path_factory.mktemp("regression")
    labelled = folder / "targets.npz"
    np.savez(labelled, x=x[:TRAIN], y=y[:TRAIN], x_val=x[TRAIN:], y_val=y[TRAIN:])
    x_only = folder / "x_only.npz"
    np.savez(x_only, x=x[:TRAIN])
    return model, x, y, labelled, x_only


def _rmse(predicted: np.ndarray, target: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predicted.reshape(-1) - target.reshape(-1)) ** 2)))


def test_evaluate_reports_rmse_mae_r2_for_keras(trained):
    model, x, y, labelled, _ = trained
    report = evaluate(model, labelled)
    assert report.task == "regression"  # inferred: float targets of the output's shape
    assert report.top1 is None and report.classes is None
    expected = _rmse(model.predict(x[TRAIN:], verbose=0), y[TRAIN:])
    assert report.metrics["rmse"] == pytest.approx(expected, rel=1e-4)
    assert 0 < report.metrics["mae"] <= report.metrics["rmse"]
    assert report.metrics["r2"] > 0.9  # learned: the target's spread is ~1.3, the RMSE ~0.2
    assert report.metric_info[0]["name"] == "rmse"
    assert report.metric_info[0]["higher_is_better"] is False
    assert report.to_dict()["metrics"]["rmse"] == report.metrics["rmse"]


def test_int8_calibrated_from_x_only_keeps_rmse(trained, tmp_path):
    model, x, y, labelled, x_only = trained
    fp32 = evaluate(model, labelled).metrics["rmse"]
    output = tmp_path / "mlp-int8.tflite"
    result = convert(model, output, quantize="int8", data=str(x_only))
    assert result.quantize == "int8"
    report = evaluate(output, labelled, reference=model)
    assert report.kind == "tflite" and report.task == "regression"
    int8 = report.metrics["rmse"]
    print(f"regression MLP RMSE keras {fp32:.4f} int8 tflite {int8:.4f}")
    assert int8 == pytest.approx(_rmse(_tflite(output, x[TRAIN:]), y[TRAIN:]), rel=1e-4)
    assert int8 < fp32 * 1.5 + 0.02  # calibrated from x alone, still a fit, not garbage
    assert report.reference is not None
    assert report.reference.top1_agreement is None  # not a classifier
    assert report.reference.max_abs_diff < 0.5


def test_x_only_data_gives_parity_without_metrics(trained, tmp_path):
    model, _, _, _, x_only = trained
    output = tmp_path / "mlp.tflite"
    convert(model, output)
    report = evaluate(output, x_only, reference=model)
    assert report.task is None and report.metrics == {}
    assert report.reference is not None and report.reference.max_abs_diff < 1e-4


def _tflite(path, x: np.ndarray) -> np.ndarray:
    from edgeprune.tflite import TFLiteRunner

    return TFLiteRunner(path).predict(x)


def test_two_output_regression_from_y_name_arrays_scores_each_output(tmp_path, run_cli):
    from edgeprune import _tf

    keras = _tf.keras()
    keras.utils.set_random_seed(2)
    inputs = keras.Input((3,), name="x")
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    speed = keras.layers.Dense(2, name="speed")(hidden)
    angle = keras.layers.Dense(1, name="angle")(hidden)
    model = keras.Model(inputs, [speed, angle])
    model.save(tmp_path / "two.keras")
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    targets = {"speed": rng.normal(size=(40, 2)), "angle": rng.normal(size=(40, 1))}
    path = tmp_path / "two.npz"
    np.savez(
        path,
        x=x[:30],
        x_val=x[30:],
        **{f"y_{k}": v[:30] for k, v in targets.items()},
        **{f"y_val_{k}": v[30:] for k, v in targets.items()},
    )
    outcome = run_cli("evaluate", tmp_path / "two.keras", "--data", path, "--json")
    assert outcome.code == 0, outcome.err
    import json

    metrics = json.loads(outcome.out)["metrics"]
    predicted = model.predict(x[30:], verbose=0)
    speed_rmse = _rmse(predicted[0], targets["speed"][30:])
    angle_rmse = _rmse(predicted[1], targets["angle"][30:])
    assert metrics["rmse/speed"] == pytest.approx(speed_rmse, rel=1e-4)
    assert metrics["rmse/angle"] == pytest.approx(angle_rmse, rel=1e-4)
    assert metrics["rmse"] == pytest.approx((speed_rmse + angle_rmse) / 2, rel=1e-4)
    shown = run_cli("evaluate", tmp_path / "two.keras", "--data", path)
    assert "RMSE" in shown.out and "rmse/speed" in shown.out
