"""A trained U-Net (Concatenate skip) channel-pruned by 30 %, converted fp32 and int8 by
edgeprune's own converter, run by the real TFLite runtime: the masks must agree with Keras."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.task_models import SEGMENT_CLASSES, disc_masks, unet

from channels.toy_models import run_tflite
from edgeprune.channels import prune_channels
from edgeprune.data import Dataset


def _miou(masks: np.ndarray, predicted: np.ndarray, classes: int) -> float:
    """Mean IoU over the classes present in either map (the test's own yardstick)."""
    ious = []
    for c in range(classes):
        union = np.logical_or(masks == c, predicted == c).sum()
        if union:
            ious.append(np.logical_and(masks == c, predicted == c).sum() / union)
    return float(np.mean(ious))


@pytest.fixture(scope="module")
def trained_unet():
    x, masks = disc_masks(160, seed=3)
    model = unet(seed=3)
    model.fit(x[:128], masks[:128], epochs=6, batch_size=16, verbose=0)
    return model, x, masks


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_pruned_unet_masks_agree_between_keras_and_tflite(trained_unet, quantize, tmp_path: Path):
    from edgeprune.tflite import convert

    model, x, masks = trained_unet
    pruned, report = prune_channels(model, ratio=0.3, granularity=2, min_filters=2)
    assert report.layers["enc1"]["after"] < 8 and report.layers["classes"]["after"] == 3
    skip = pruned.get_layer("skip").output.shape[-1]
    assert skip == pruned.get_layer("mid").filters + pruned.get_layer("enc1").filters
    assert pruned.get_layer("dec1").get_weights()[0].shape[2] == skip

    calibration = Dataset(
        "discs", x[:128], masks[:128], x[128:], masks[128:], list(SEGMENT_CLASSES)
    )
    target = tmp_path / f"unet-{quantize}.tflite"
    convert(pruned, target, quantize=quantize, dataset=calibration if quantize == "int8" else None)
    val_x, val_masks = x[128:], masks[128:]
    keras_maps = np.asarray(pruned(val_x, training=False)).argmax(-1)
    tflite_maps = run_tflite(target.read_bytes(), val_x).argmax(-1)
    agreement = float(np.mean(keras_maps == tflite_maps))
    keras_miou = _miou(val_masks, keras_maps, 3)
    tflite_miou = _miou(val_masks, tflite_maps, 3)
    print(
        f"{quantize}: pixel agreement {agreement:.4f}, mIoU {keras_miou:.4f} -> {tflite_miou:.4f}"
    )
    assert agreement >= (0.999 if quantize == "none" else 0.97)
    assert abs(keras_miou - tflite_miou) <= 0.01
