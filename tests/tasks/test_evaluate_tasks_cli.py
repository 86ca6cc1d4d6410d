"""`edgeprune evaluate` / `convert` from the CLI on .npz files of float targets, masks, x only.

Real files end to end: a regression MLP and a U-Net (tests/support/task_models.py), their
.tflite conversions, and what a user reads (RMSE as a number, mIoU as a percent).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from support.task_models import disc_masks, regression_data, regression_mlp, unet


@pytest.fixture(scope="module")
def regression_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reg_cli")
    x, y = regression_data(300)
    model = regression_mlp()
    model.fit(x[:240], y[:240], epochs=15, batch_size=32, verbose=0)
    model.save(folder / "reg.keras")
    np.savez(folder / "reg.npz", x=x[:240], y=y[:240], x_val=x[240:], y_val=y[240:])
    np.savez(folder / "x_only.npz", x=x)
    return folder


def test_regression_numbers_and_parity(run_cli, regression_files):
    folder = regression_files
    report = run_cli("evaluate", folder / "reg.keras", "--data", folder / "reg.npz", "--json")
    assert report.code == 0, report.err
    metrics = json.loads(report.out)["metrics"]
    assert json.loads(report.out)["task"] == "regression" and metrics["r2"] > 0.5
    human = run_cli("evaluate", folder / "reg.keras", "--data", folder / "reg.npz")
    text = " ".join(human.out.split())
    assert f"RMSE {metrics['rmse']:.4g}, MAE {metrics['mae']:.4g}" in text
    assert "60 validation samples, regression" in text and "%" not in text.split("R²")[0]


def test_int8_from_x_only_then_parity_without_labels(run_cli, regression_files):
    folder = regression_files
    int8 = folder / "reg_int8.tflite"
    outcome = run_cli(
        "convert",
        folder / "reg.keras",
        "-o",
        int8,
        "--quantize",
        "int8",
        "--data",
        folder / "x_only.npz",
    )
    assert outcome.code == 0, outcome.err
    parity = run_cli(
        "evaluate", int8, "--data", folder / "x_only.npz", "--reference", folder / "reg.keras"
    )
    assert parity.code == 0, parity.err
    text = " ".join(parity.out.split())
    assert "(no labels)" in text and re.search(r"max \|diff\| [0-9.e-]+", text)
    alone = run_cli("evaluate", int8, "--data", folder / "x_only.npz")
    assert alone.code == 2 and "--reference" in alone.err
    assert len(alone.err.strip().splitlines()) == 1
    scored = run_cli(
        "evaluate",
        int8,
        "--data",
        folder / "reg.npz",
        "--reference",
        folder / "reg.keras",
        "--json",
    )
    report = json.loads(scored.out)
    drop = report["metrics"]["rmse"] - report["reference"]["reference_metrics"]["rmse"]
    assert abs(drop) < 0.05  # calibrated from x alone, int8 keeps the RMSE


def test_segmentation_masks_from_the_cli(run_cli, tmp_path):
    x, masks = disc_masks(60, seed=4)
    model = unet()
    model.fit(x[:48], masks[:48], epochs=2, batch_size=16, verbose=0)
    model.save(tmp_path / "unet.keras")
    np.savez(tmp_path / "masks.npz", x=x[:48], y=masks[:48], x_val=x[48:], y_val=masks[48:])
    outcome = run_cli(
        "evaluate", tmp_path / "unet.keras", "--data", tmp_path / "masks.npz", "--json"
    )
    assert outcome.code == 0, outcome.err
    report = json.loads(outcome.out)
    assert report["task"] == "segmentation" and report["top1"] is None
    assert report["metric_info"][0]["name"] == "miou"
    assert 0.0 <= report["metrics"]["miou"] <= 1.0
    human = run_cli("evaluate", tmp_path / "unet.keras", "--data", tmp_path / "masks.npz")
    text = " ".join(human.out.split())
    assert f"mIoU {report['metrics']['miou'] * 100:.2f} %" in text
    assert f"iou/1 {report['metrics']['iou/1'] * 100:.2f} %" in text  # per class, as percents
    small = np.zeros((12, 16, 16), np.int64)
    np.savez(tmp_path / "small.npz", x=x[:12], y=small)
    wrong = run_cli(
        "evaluate",
        tmp_path / "unet.keras",
        "--data",
        tmp_path / "small.npz",
        "--task",
        "segmentation",
    )
    assert wrong.code == 2 and "masks are 16x16" in wrong.err
    assert len(wrong.err.strip().splitlines()) == 1


def test_convert_reports_the_task_metric(run_cli, regression_files):
    folder = regression_files
    outcome = run_cli(
        "convert", folder / "reg.keras", "-o", folder / "reg.tflite", "--data", folder / "reg.npz"
    )
    assert outcome.code == 0, outcome.err
    manifest = json.loads((folder / "reg.tflite.json").read_text())
    rmse = manifest["accuracy"]["metrics"]["rmse"]
    assert manifest["accuracy"]["task"] == "regression" and "top1" not in manifest["accuracy"]
    assert f"RMSE {rmse:.4g} on reg (60 validation samples, regression)" in " ".join(
        outcome.out.split()
    )
    import edgeprune as ep

    result = ep.convert(folder / "reg.keras", folder / "reg2.tflite", data=str(folder / "reg.npz"))
    assert "RMSE" in repr(result)


def test_int8_calibrated_from_a_plain_image_folder(run_cli, tmp_path):
    """A folder of images with no class sub-folders is calibration data (resized to the input)."""
    from PIL import Image

    from edgeprune import _tf

    keras = _tf.keras()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    hidden = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(hidden))
    keras.Model(inputs, outputs).save(tmp_path / "conv.keras")
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        pixels = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"frame{i:02d}.png")
    int8 = tmp_path / "conv_int8.tflite"
    outcome = run_cli(
        "convert", tmp_path / "conv.keras", "-o", int8, "--quantize", "int8", "--data", folder
    )
    assert outcome.code == 0, outcome.err
    assert "no labels: calibration only" in " ".join(outcome.out.split())
    parity = run_cli(
        "evaluate", int8, "--data", folder, "--reference", tmp_path / "conv.keras", "--json"
    )
    assert parity.code == 0, parity.err
    report = json.loads(parity.out)
    assert report["task"] is None and report["samples"] >= 2
    assert 0 < report["reference"]["max_abs_diff"] < 0.5
