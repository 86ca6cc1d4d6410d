"""The detector through the real CLI: channels, prune, int8 calibrated from the COCO images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from support.detection_data import shapes_detector_path, shapes_val_json  # noqa: F401

from edgeprune.data import load_dataset
from edgeprune.tasks.detection import DetectionTask


def _tflite_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    from edgeprune.tflite.runner import TFLiteRunner

    return TFLiteRunner(path, label=path.name).predict(x)


def test_channels_then_int8_keeps_map50(
    run_cli,
    shapes_detector_path: Path,  # noqa: F811
    shapes_val_json: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    import keras

    slim, pruned, int8 = tmp_path / "slim.keras", tmp_path / "sp.keras", tmp_path / "int8.tflite"
    outcome = run_cli("channels", shapes_detector_path, "-o", slim, "--ratio", "0.3")
    assert outcome.code == 0, outcome
    outcome = run_cli("prune", slim, "-o", pruned, "--sparsity", "0.5")
    assert outcome.code == 0, outcome
    outcome = run_cli(
        "convert", pruned, "-o", int8, "--quantize", "int8", "--data", shapes_val_json
    )
    assert outcome.code == 0, outcome
    data = load_dataset(shapes_val_json, (64, 64))
    task = DetectionTask("yolo")
    model = keras.saving.load_model(pruned)
    kernels = [np.asarray(w) for w in model.weights if len(w.shape) == 4]
    zeros = sum(int(np.sum(k == 0)) for k in kernels) / sum(k.size for k in kernels)
    assert zeros >= 0.4, zeros  # 50 % of the prunable kernels (small ones are left alone)
    keras_map50 = task.score(data, [model.predict(data.x_val, verbose=0)])["map50"]
    tflite_map50 = task.score(data, [_tflite_outputs(int8, data.x_val)])["map50"]
    assert keras_map50 > 0.2, keras_map50  # one-shot, no fine-tune: lower than dense, not nothing
    # int8 of a one-shot pruned detector: within 5 points of mAP@.5 (0.030 seen on a fresh
    # machine whose fixture detector trained differently; 0.01 held only for some trainings)
    assert abs(keras_map50 - tflite_map50) <= 0.05, (keras_map50, tflite_map50)


def test_evaluate_a_detector_from_the_cli(
    run_cli,
    shapes_detector_path: Path,  # noqa: F811
    shapes_val_json: Path,  # noqa: F811
) -> None:
    import json

    import keras

    outcome = run_cli(
        "evaluate",
        shapes_detector_path,
        "--data",
        shapes_val_json,
        "--task",
        "detection",
        "--decode",
        "yolo",
        "--json",
    )
    assert outcome.code == 0, outcome
    report = json.loads(outcome.out)
    assert report["task"] == "detection" and report["samples"] == 200
    metrics = report["metrics"]
    model = keras.saving.load_model(shapes_detector_path)
    data = load_dataset(shapes_val_json, (64, 64))
    direct = DetectionTask("yolo").score(data, [model.predict(data.x_val, verbose=0)])
    assert metrics == direct and metrics["map50"] >= 0.6, metrics
    shown = run_cli("evaluate", shapes_detector_path, "--data", shapes_val_json)  # inferred
    assert shown.code == 0 and "mAP@.5" in shown.out and "map50/disc" in shown.out, shown
    wrong = run_cli(
        "evaluate", shapes_detector_path, "--data", shapes_val_json, "--decode", "postprocess"
    )
    assert wrong.code == 2 and wrong.out == "", wrong
    assert len(wrong.err.strip().splitlines()) == 1 and "--decode" in wrong.err, wrong.err
