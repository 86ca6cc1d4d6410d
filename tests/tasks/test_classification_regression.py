"""Classification and regression scores on real arrays, and their default losses on real models."""

from __future__ import annotations

import numpy as np
import pytest

from edgeprune.data import Dataset
from edgeprune.tasks import OutputInfo, get_task


def _data(y) -> Dataset:
    x = np.zeros((len(y), 2), np.float32)
    return Dataset("d", x, y, x, y, [])


def test_top1_top5_and_subsets():
    rng = np.random.default_rng(1)
    outputs = rng.normal(size=(50, 10)).astype(np.float32)
    labels = outputs.argmax(axis=1).copy()
    labels[:10] = (labels[:10] + 1) % 10  # 10 of 50 wrong at top-1
    task = get_task("classification")
    data = _data(labels)
    task.check(data, [OutputInfo("o", (None, 10))], "m")
    scores = task.score(data, [outputs])
    assert scores["top1"] == pytest.approx(0.8)
    assert 0.8 <= scores["top5"] <= 1.0
    scorer = task.scorer(data, [outputs])
    assert scorer(np.arange(10, 50))["top1"] == 1.0
    assert scorer(np.arange(10))["top1"] == 0.0


def test_binary_unit_thresholds():
    task = get_task("classification")
    probs = np.array([[0.9], [0.2], [0.7]], np.float32)
    assert task.score(_data(np.array([1, 0, 0])), [probs])["top1"] == pytest.approx(2 / 3)
    logits = np.array([[3.0], [-2.0], [-0.5]], np.float32)
    assert task.score(_data(np.array([1, 0, 0])), [logits])["top1"] == 1.0


def test_regression_numbers_match_definitions():
    y = np.array([[1.0], [2.0], [3.0], [4.0]])
    pred = np.array([[1.5], [2.0], [2.0], [4.0]])
    task = get_task("regression")
    task.check(_data(y), [OutputInfo("o", (None, 1))], "m")
    scores = task.score(_data(y), [pred])
    err = pred - y
    assert scores["rmse"] == pytest.approx(np.sqrt(np.mean(err**2)))
    assert scores["mae"] == pytest.approx(np.mean(np.abs(err)))
    assert scores["r2"] == pytest.approx(1 - np.sum(err**2) / np.sum((y - y.mean()) ** 2))
    assert task.primary.higher_is_better is False and task.primary.unit == "value"


def test_regression_per_output():
    y = {"a": np.zeros((4, 2)), "b": np.ones((4,))}
    data = Dataset("d", np.zeros((4, 1)), y, np.zeros((4, 1)), y, [])
    task = get_task("regression")
    task.check(data, [OutputInfo("a", (None, 2)), OutputInfo("b", (None, 1))], "m")
    scores = task.score(data, [np.ones((4, 2)), np.ones((4, 1))])
    assert scores["rmse/a"] == pytest.approx(1.0) and scores["rmse/b"] == 0.0
    assert scores["rmse"] == pytest.approx(0.5)


def test_default_losses_follow_the_model():
    from edgeprune import _tf

    keras = _tf.keras()
    inputs = keras.Input((4,))
    logits = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    softmax = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    assert get_task("classification").default_loss(logits).get_config()["from_logits"] is True
    assert get_task("classification").default_loss(softmax).get_config()["from_logits"] is False
    assert type(get_task("regression").default_loss(logits)).__name__ == "MeanSquaredError"
