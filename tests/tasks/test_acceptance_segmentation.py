"""Issue 15 acceptance: a U-Net-style segmenter on generated masks keeps its mIoU in int8.

The U-Net (Conv, down-sample, up-sample, Concatenate skip; tests/support/task_models.py)
is trained here on generated discs and squares; Keras and the int8 .tflite (calibrated
from the training images) are scored by the same SegmentationTask on the held-out images.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.task_models import SEGMENT_CLASSES, disc_masks, unet

from edgeprune.data import Dataset
from edgeprune.tasks.base import OutputInfo
from edgeprune.tasks.segmentation import SegmentationTask
from edgeprune.text import percent
from edgeprune.tflite import TFLiteRunner, convert

TRAIN = 200


@pytest.fixture(scope="module")
def trained():
    x, masks = disc_masks(TRAIN + 48, seed=3)
    model = unet()
    model.fit(x[:TRAIN], masks[:TRAIN], epochs=6, batch_size=16, verbose=0)
    data = Dataset(
        "discs", x[:TRAIN], masks[:TRAIN], x[TRAIN:], masks[TRAIN:], list(SEGMENT_CLASSES)
    )
    return model, data


def _scores(data: Dataset, outputs: np.ndarray) -> dict[str, float]:
    task = SegmentationTask()
    task.check(data, [OutputInfo("classes", (None, *outputs.shape[1:]))], "unet")
    return task.score(data, [outputs])


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_miou_of_keras_and_tflite_within_one_point(trained, tmp_path, quantize):
    model, data = trained
    keras_scores = _scores(data, model.predict(data.x_val, verbose=0))
    assert keras_scores["miou"] > 0.7, keras_scores  # the model learned the shapes
    output = tmp_path / f"unet-{quantize}.tflite"
    convert(model, output, quantize=quantize, dataset=data if quantize == "int8" else None)
    runner = TFLiteRunner(output)
    if quantize == "int8":
        assert runner.inputs[0].dtype == "float32"  # float io, int8 kernels inside
    tflite_scores = _scores(data, runner.predict(data.x_val))
    drop = keras_scores["miou"] - tflite_scores["miou"]
    print(
        f"unet mIoU keras {keras_scores['miou']:.4f} tflite-{quantize} "
        f"{tflite_scores['miou']:.4f} (drop {100 * drop:.2f} points); pixel accuracy "
        f"{keras_scores['pixel_accuracy']:.4f} vs {tflite_scores['pixel_accuracy']:.4f}"
    )
    assert abs(drop) <= 0.01
    for name in SEGMENT_CLASSES:
        assert abs(keras_scores[f"iou/{name}"] - tflite_scores[f"iou/{name}"]) <= 0.03


def test_cli_evaluates_the_int8_segmenter_from_a_masks_npz(trained, tmp_path, run_cli):
    model, data = trained
    keras_file = tmp_path / "unet.keras"
    model.save(keras_file)
    masks = tmp_path / "masks.npz"
    np.savez(masks, x=data.x_train, y=data.y_train, x_val=data.x_val, y_val=data.y_val)
    x_only = tmp_path / "images.npz"
    np.savez(x_only, x=data.x_train)
    int8 = tmp_path / "unet-int8.tflite"
    converted = run_cli("convert", keras_file, "-o", int8, "--quantize", "int8", "--data", x_only)
    assert converted.code == 0, converted.err
    outcome = run_cli("evaluate", int8, "--data", masks, "--reference", keras_file, "--json")
    assert outcome.code == 0, outcome.err
    report = json.loads(outcome.out)
    assert report["task"] == "segmentation" and report["top1"] is None
    expected = _scores(data, TFLiteRunner(int8).predict(data.x_val))
    assert report["metrics"]["miou"] == pytest.approx(expected["miou"])
    assert abs(report["metrics"]["miou"] - report["reference"]["reference_metrics"]["miou"]) <= 0.01
    shown = run_cli("evaluate", int8, "--data", masks)
    assert f"mIoU {percent(expected['miou'])}" in " ".join(shown.out.split()), shown.out
