"""Segmentation scores on real arrays: mIoU and pixel accuracy by their definitions, per class."""

from __future__ import annotations

import numpy as np
import pytest

from edgeprune.data import Dataset
from edgeprune.errors import UserError
from edgeprune.tasks.base import OutputInfo
from edgeprune.tasks.segmentation import SegmentationTask


def _data(masks, names=()) -> Dataset:
    x = np.zeros((len(masks), *masks.shape[1:3], 1), np.float32)
    return Dataset("masks", x, masks, x, masks, list(names))


def _masks(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 3, size=(6, 8, 8))


def _iou_by_hand(truth: np.ndarray, pred: np.ndarray, cls: int) -> float:
    inter = np.sum((truth == cls) & (pred == cls))
    union = np.sum((truth == cls) | (pred == cls))
    return inter / union


def test_logits_and_class_maps_score_alike():
    truth = _masks()
    pred = truth.copy()
    pred[:, :2, :] = 0  # some pixels wrong
    logits = np.eye(3, dtype=np.float32)[pred] * 5.0  # [N, H, W, 3]
    data = _data(truth, ["bg", "a", "b"])
    task = SegmentationTask()
    task.check(data, [OutputInfo("o", (None, 8, 8, 3))], "m")
    scores = task.score(data, [logits])
    assert scores == task.score(data, [pred.astype(np.float32)])
    expected = [_iou_by_hand(truth, pred, c) for c in range(3)]
    assert scores["miou"] == pytest.approx(np.mean(expected))
    assert scores["iou/a"] == pytest.approx(expected[1])
    assert scores["pixel_accuracy"] == pytest.approx(np.mean(truth == pred))
    assert task.primary.name == "miou" and task.primary.unit == "fraction"


def test_subsets_sum_their_pixels():
    truth = _masks(1)
    pred = _masks(2)
    data = _data(truth)
    task = SegmentationTask()
    scorer = task.scorer(data, [pred])
    part = scorer(np.array([0, 3]))
    assert part["pixel_accuracy"] == pytest.approx(np.mean(truth[[0, 3]] == pred[[0, 3]]))
    assert part["iou/1"] == pytest.approx(_iou_by_hand(truth[[0, 3]], pred[[0, 3]], 1))


def test_absent_classes_do_not_count():
    truth = np.zeros((2, 4, 4), np.int64)
    truth[:, :2] = 1
    logits = np.zeros((2, 4, 4, 4), np.float32)
    logits[..., 0] = 1.0
    logits[:, :2, :, 1] = 2.0
    scores = SegmentationTask().score(_data(truth), [logits])
    assert scores["miou"] == 1.0 and "iou/3" not in scores


def test_mismatches_are_one_line_before_work():
    data = _data(np.zeros((2, 8, 8), np.int64))
    task = SegmentationTask()
    with pytest.raises(UserError) as caught:
        task.check(data, [OutputInfo("o", (None, 16, 16, 3))], "'unet.keras'")
    assert str(caught.value) == (
        "dataset 'masks' masks are 8x8 but 'unet.keras' outputs 16x16; give masks at the "
        "output's size"
    )
    many = _data(np.full((2, 8, 8), 5, np.int64))
    with pytest.raises(UserError, match="6 classes but 'm' outputs 3 per pixel"):
        task.check(many, [OutputInfo("o", (None, 8, 8, 3))], "'m'")
    with pytest.raises(UserError, match="segmentation needs masks"):
        task.check(
            Dataset("v", data.x_val, np.zeros(2), data.x_val, np.zeros(2), []),
            [OutputInfo("o", (None, 8, 8, 3))],
            "m",
        )


def test_default_loss_follows_the_final_activation():
    from edgeprune import _tf

    keras = _tf.keras()
    inputs = keras.Input((8, 8, 1))
    logits = keras.Model(inputs, keras.layers.Conv2D(3, 1)(inputs))
    probs = keras.Model(inputs, keras.layers.Conv2D(3, 1, activation="softmax")(inputs))
    binary = keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs))
    task = SegmentationTask()
    assert task.default_loss(logits).get_config()["from_logits"] is True
    assert task.default_loss(probs).get_config()["from_logits"] is False
    assert type(task.default_loss(binary)).__name__ == "BinaryCrossentropy"
