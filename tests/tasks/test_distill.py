"""Distillation's loss against hand computations, its packing, and a compiled Keras fit."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from edgeprune.errors import UserError
from edgeprune.tasks.classification import ClassificationTask
from edgeprune.tasks.distill import (
    BINARY_LOGITS,
    MATCH,
    SOFT_LOGITS,
    SOFT_PROBABILITIES,
    Distillation,
    distill_term,
    distillation_loss,
    distilled_fit,
    output_kind,
    pack,
    plain_compile,
)
from edgeprune.tasks.regression import RegressionTask
from edgeprune.tasks.segmentation import SegmentationTask

TEACHER = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], np.float32)
STUDENT = np.array([[1.0, 1.0, 0.0], [0.5, -0.5, 1.5]], np.float32)
LABELS = np.array([0, 2])


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _hinton(teacher: np.ndarray, student: np.ndarray, t: float) -> np.ndarray:
    p, q = _softmax(teacher / t), _softmax(student / t)
    return (p * np.log(p / q)).sum(axis=-1) * t * t


def _cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return -np.log(_softmax(logits)[np.arange(len(labels)), labels])


def _loss_value(kind, task_loss, labels, teacher, student, alpha, t=4.0):
    packed, width, dtype = pack(labels, teacher)
    loss = distillation_loss(task_loss, kind, width, dtype, Distillation(t, alpha))
    return float(np.asarray(loss(packed, student)))


@pytest.mark.parametrize("t", [1.0, 4.0])
def test_kl_with_temperature_matches_the_hand_computation(t):
    got = np.asarray(distill_term(TEACHER, STUDENT, SOFT_LOGITS, t))
    np.testing.assert_allclose(got, _hinton(TEACHER, STUDENT, t), rtol=1e-5)


def test_probabilities_enter_as_log_probabilities():
    got = np.asarray(distill_term(_softmax(TEACHER), _softmax(STUDENT), SOFT_PROBABILITIES, 3.0))
    np.testing.assert_allclose(got, _hinton(TEACHER, STUDENT, 3.0), rtol=1e-4)


def test_binary_unit_is_the_two_class_kl():
    teacher, student = TEACHER[:, :1], STUDENT[:, :1]
    p = 1 / (1 + np.exp(-teacher[:, 0].astype(np.float64) / 2.0))
    q = 1 / (1 + np.exp(-student[:, 0].astype(np.float64) / 2.0))
    by_hand = (p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))) * 4.0
    got = np.asarray(distill_term(teacher, student, BINARY_LOGITS, 2.0))
    np.testing.assert_allclose(got, by_hand, rtol=1e-4)


def test_alpha_zero_is_the_task_loss_and_one_the_pure_term():
    from keras import losses

    task = losses.SparseCategoricalCrossentropy(from_logits=True)
    ce = _cross_entropy(STUDENT, LABELS).mean()
    term = _hinton(TEACHER, STUDENT, 4.0).mean()
    assert _loss_value(SOFT_LOGITS, task, LABELS, TEACHER, STUDENT, 0.0) == pytest.approx(ce, 1e-5)
    assert _loss_value(SOFT_LOGITS, task, LABELS, TEACHER, STUDENT, 1.0) == pytest.approx(
        term, 1e-5
    )
    mixed = _loss_value(SOFT_LOGITS, task, LABELS, TEACHER, STUDENT, 0.3)
    assert mixed == pytest.approx(0.7 * ce + 0.3 * term, 1e-5)


def test_regression_matches_outputs_by_mean_squares():
    labels = np.array([[1.0, 2.0], [0.0, -1.0]], np.float32)
    teacher = np.array([[1.5, 2.0], [0.0, 0.0]], np.float32)
    student = np.array([[1.0, 1.0], [1.0, -1.0]], np.float32)
    mse = ((student - labels) ** 2).mean()
    match = ((student - teacher) ** 2).mean()
    got = _loss_value(MATCH, "mse", labels, teacher, student, 0.25)
    assert got == pytest.approx(0.75 * mse + 0.25 * match, 1e-6)


def test_segmentation_is_the_per_pixel_kl():
    from keras import losses

    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)
    student = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)
    masks = rng.integers(0, 4, size=(2, 3, 3))
    task = losses.SparseCategoricalCrossentropy(from_logits=True)
    flat_t, flat_s = teacher.reshape(-1, 4), student.reshape(-1, 4)
    ce = _cross_entropy(flat_s, masks.reshape(-1)).mean()
    term = _hinton(flat_t, flat_s, 2.0).mean()
    got = _loss_value(SOFT_LOGITS, task, masks, teacher, student, 0.5, t=2.0)
    assert got == pytest.approx(0.5 * ce + 0.5 * term, 1e-5)


def test_packing_adds_a_label_axis_and_keeps_class_ids_exact():
    packed, width, dtype = pack(np.array([3, 70000]), np.zeros((2, 5), np.float32))
    assert packed.shape == (2, 6) and width == 0 and dtype == "int"
    assert packed[:, 0].tolist() == [3, 70000]
    packed, width, dtype = pack(np.ones((2, 3), np.float32), np.zeros((2, 2), np.float32))
    assert packed.shape == (2, 5) and width == 3 and dtype == "float"
    with pytest.raises(UserError, match="do not match outputs"):
        pack(np.zeros((2, 4, 4)), np.zeros((2, 3, 3, 2), np.float32))


def _two_output_model():
    import keras

    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    classes = keras.layers.Dense(3, activation="softmax", name="classes")(hidden)
    value = keras.layers.Dense(1, name="value")(hidden)
    return keras.Model(inputs, {"classes": classes, "value": value})


def test_multi_output_models_distil_per_output():
    model = _two_output_model()
    x = np.random.default_rng(1).normal(size=(16, 4)).astype(np.float32)
    labels = {"classes": np.arange(16) % 3, "value": np.linspace(0, 1, 16).astype(np.float32)}
    teacher_out = model.predict(x, verbose=0)
    loss, targets = distilled_fit(
        model,
        RegressionTask(),
        {"classes": "sparse_categorical_crossentropy", "value": "mse"},
        x,
        labels,
        Distillation(4.0, 0.5),
    )
    assert set(targets) == {"classes", "value"}
    assert targets["classes"].shape == (16, 4)
    np.testing.assert_array_equal(targets["classes"][:, 0], labels["classes"])
    np.testing.assert_allclose(targets["classes"][:, 1:], teacher_out["classes"], rtol=1e-6)
    np.testing.assert_allclose(targets["value"][:, 1:], teacher_out["value"], rtol=1e-6)
    assert loss["value"].kind == MATCH  # not a classifier: output matching on every output
    model.compile(optimizer="adam", loss=loss)
    model.fit(x, targets, epochs=1, verbose=0)
    with pytest.raises(UserError, match="labels per output"):
        distilled_fit(model, RegressionTask(), "mse", x, labels["value"], Distillation(4.0, 0.5))


def test_output_kind_follows_the_final_activation():
    import keras

    inputs = keras.Input((4,))
    softmax = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    logits = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    sample = np.zeros((2, 3), np.float32)
    assert output_kind(softmax, ClassificationTask(), 0, sample) == SOFT_PROBABILITIES
    assert output_kind(logits, ClassificationTask(), 0, sample) == SOFT_LOGITS
    assert output_kind(logits, SegmentationTask(), 0, sample) == SOFT_LOGITS
    assert output_kind(logits, RegressionTask(), 0, sample) == MATCH


def test_a_distilled_model_saves_and_loads_with_stock_keras(tmp_path):
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    teacher = keras.models.clone_model(model)
    teacher.set_weights(model.get_weights())
    x = np.random.default_rng(2).normal(size=(12, 4)).astype(np.float32)
    y = np.arange(12) % 3
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    loss, targets = distilled_fit(teacher, ClassificationTask(), plain, x, y, Distillation(2, 0.5))
    model.compile(optimizer="adam", loss=loss)
    model.fit(x, targets, epochs=2, verbose=0)
    plain_compile(model, plain)
    path = tmp_path / "m.keras"
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    assert "istill" not in json.dumps(config["compile_config"])  # the plain loss only
    loaded = keras.models.load_model(path)  # compiled, with stock Keras only
    assert loaded.loss is not None
