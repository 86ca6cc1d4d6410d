"""The task registry: names to tasks, and inference from real labels and real Keras outputs."""

from __future__ import annotations

import numpy as np
import pytest

from edgeprune.data import Dataset
from edgeprune.errors import UserError
from edgeprune.tasks import OutputInfo, get_task, infer_task
from edgeprune.tasks.outputs import keras_outputs, resolve_task


def _data(y_val, y_train=None, **kw) -> Dataset:
    x = np.zeros((len(y_val), 4), np.float32)
    return Dataset("d", x, y_val if y_train is None else y_train, x, y_val, [], **kw)


def test_names_map_to_tasks():
    assert get_task("classification").name == "classification"
    assert get_task("regression").primary.name == "rmse"
    with pytest.raises(UserError, match="not one of"):
        get_task("ranking")


def test_integer_labels_and_class_scores_are_classification():
    task = infer_task(_data(np.array([0, 1, 2, 9])), [OutputInfo("out", (None, 10))])
    assert task.name == "classification"
    assert [m.name for m in task.metrics] == ["top1", "top5"]


def test_few_classes_drop_top5():
    task = infer_task(_data(np.array([0, 1, 2])), [OutputInfo("out", (None, 3))])
    assert [m.name for m in task.metrics] == ["top1"]


def test_binary_unit_is_classification_but_many_ids_on_one_unit_are_not():
    assert infer_task(_data(np.array([0, 1, 1])), [OutputInfo("o", (None, 1))]).name == (
        "classification"
    )
    # class ids up to 7 on one unit: the labels match the output's shape -> regression
    assert infer_task(_data(np.array([0, 7, 3])), [OutputInfo("o", (None, 1))]).name == (
        "regression"
    )


def test_float_targets_of_the_output_shape_are_regression():
    y = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    assert infer_task(_data(y), [OutputInfo("o", (None, 3))]).name == "regression"


def test_masks_and_pixel_logits_are_segmentation_when_available():
    y = np.zeros((2, 8, 8), np.int64)
    try:
        task = infer_task(_data(y), [OutputInfo("o", (None, 8, 8, 3))])
    except UserError as exc:  # until tasks.segmentation exists
        assert "not available" in str(exc)
    else:
        assert task.name == "segmentation"


def test_ambiguous_labels_name_what_was_seen():
    y = np.zeros((3, 5), np.float32)
    with pytest.raises(UserError) as caught:
        infer_task(_data(y), [OutputInfo("o", (None, 10))])
    message = str(caught.value)
    assert "float32 (5,)" in message and "(10,)" in message and "`task`" in message
    assert caught.value.params == ("task",)
    assert "\n" not in message


def test_x_only_data_cannot_be_scored():
    data = _data(np.zeros(3))
    data.y_val = None
    with pytest.raises(UserError, match="no labels"):
        infer_task(data, [OutputInfo("o", (None, 2))])


def test_given_task_is_checked_against_data():
    with pytest.raises(UserError, match="10 classes but the model outputs 3"):
        infer_task(_data(np.arange(10)), [OutputInfo("o", (None, 3))], "classification")
    with pytest.raises(UserError, match="targets of shape"):
        infer_task(_data(np.zeros((3, 2))), [OutputInfo("o", (None, 5))], "regression")


def test_detection_until_its_module_exists_is_one_line():
    data = _data(np.zeros(2))
    data.ground_truth = object()
    try:
        get_task("detection")
    except UserError as exc:
        assert "not available" in str(exc) and exc.params == ("task",)


def test_keras_outputs_and_resolve_task():
    from edgeprune import _tf

    keras = _tf.keras()
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    a = keras.layers.Dense(2, name="speed")(hidden)
    b = keras.layers.Dense(1, name="angle")(hidden)
    model = keras.Model(inputs, [a, b])
    outputs = keras_outputs(model)
    assert outputs == [OutputInfo("speed", (None, 2)), OutputInfo("angle", (None, 1))]
    y = {"speed": np.zeros((3, 2), np.float32), "angle": np.zeros((3, 1), np.float32)}
    task = resolve_task(_data(y), outputs, {"task": None})
    assert task.name == "regression"
    with pytest.raises(UserError, match="outputs are speed, angle"):
        resolve_task(_data({"speed": y["speed"]}), outputs, None)


def test_class_ids_beyond_the_outputs_are_classification_named_by_its_check():
    with pytest.raises(UserError, match="has 10 classes but the model outputs 5"):
        infer_task(_data(np.arange(10)), [OutputInfo("o", (None, 5))])


def test_masks_and_class_maps_are_segmentation():
    y = np.zeros((2, 8, 8), np.int64)
    assert infer_task(_data(y), [OutputInfo("o", (None, 8, 8))]).name == "segmentation"
    with pytest.raises(UserError, match="one int64 per sample"):
        infer_task(_data(np.zeros(3, np.int64)), [OutputInfo("o", (None, 8, 8))])


def test_subclassed_model_outputs_come_from_one_sample_run():
    from edgeprune import _tf

    keras = _tf.keras()

    class Twin(keras.Model):
        def __init__(self):
            super().__init__()
            self.a = keras.layers.Dense(3)
            self.b = keras.layers.Dense(1)

        def call(self, x):
            return self.a(x), self.b(x)

    outputs = keras_outputs(Twin(), np.zeros((2, 4), np.float32))
    assert [o.shape for o in outputs] == [(None, 3), (None, 1)]


def test_custom_settings_reach_only_the_custom_task(tmp_path):
    with pytest.raises(UserError, match="decides are for task custom"):
        get_task("regression", decides="f1")
    assert get_task("regression", decides=None).name == "regression"
    path = tmp_path / "m.py"
    path.write_text("def f(y_true, y_pred):\n    return {'f1': 0.5, 'loss': 2.0}\n")
    task = resolve_task(
        _data(np.zeros(3)),
        [OutputInfo("o", (None, 1))],
        {"task": "custom", "metric": f"{path}:f", "decides": "loss", "higher_is_better": False},
    )
    assert task.primary.name == "loss" and not task.primary.higher_is_better
