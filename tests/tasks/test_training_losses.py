"""The loss of every training stage follows the task: --loss, else the compiled loss, else the task's.

Real Keras models and `.keras` files; a regression MLP is gradual-pruned to 50 % on float
targets and scored in RMSE; a custom loss named only by a file is refused, never imported.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgeprune import _tf
from edgeprune.data import Dataset
from edgeprune.errors import UserError
from edgeprune.prune.task_training import (
    LOSS_COMPILED,
    LOSS_OPTION,
    LOSS_TASK,
    compiled_loss,
    named_loss,
    resolve_loss,
)
from edgeprune.tasks.registry import get_task
from tests.support.task_models import disc_masks, regression_data, regression_mlp, unet


@pytest.fixture(scope="module")
def keras():
    return _tf.keras()


def _mlp(keras, seed: int = 0):
    keras.utils.set_random_seed(seed)
    layers = keras.layers
    inputs = keras.Input((8,))
    x = layers.Dense(32, activation="relu", name="hidden1")(inputs)
    x = layers.Dense(32, activation="relu", name="hidden2")(x)
    return keras.Model(inputs, layers.Dense(1, name="value")(x), name="mlp")


def _regression_data(count: int = 320) -> Dataset:
    x, y = regression_data(count)
    split = count * 3 // 4
    return Dataset("reg", x[:split], y[:split], x[split:], y[split:], [])


def _saved(keras, tmp_path: Path, name: str, loss=None) -> Path:
    model = _mlp(keras)
    if loss is not None:
        model.compile(optimizer="adam", loss=loss)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    return path


def test_the_compiled_loss_is_read_from_the_keras_file(keras, tmp_path):
    model = keras.models.load_model(_saved(keras, tmp_path, "mse", "mse"), compile=False)
    assert not model.compiled
    found = compiled_loss(model, tmp_path / "mse.keras")
    assert found is not None and found.source == LOSS_COMPILED and found.name == "mse"
    y = np.array([[1.0], [3.0]], np.float32)
    assert np.asarray(found.loss(y, np.zeros_like(y))) == pytest.approx([1.0, 9.0])

    huber = compiled_loss(model, _saved(keras, tmp_path, "huber", keras.losses.Huber()))
    assert huber is not None and isinstance(huber.loss, keras.losses.Huber)
    assert compiled_loss(model, _saved(keras, tmp_path, "bare")) is None


def test_without_a_compiled_loss_the_task_default_trains(keras, tmp_path):
    path = _saved(keras, tmp_path, "bare")
    model = keras.models.load_model(path, compile=False)
    chosen = resolve_loss(model, get_task("regression"), None, path)
    assert chosen.source == LOSS_TASK
    override = resolve_loss(
        model, get_task("regression"), "huber", _saved(keras, tmp_path, "m", "mse")
    )
    assert override.source == LOSS_OPTION and override.name == "huber"


def test_a_loss_file_function_is_loaded_only_when_named(tmp_path):
    module = tmp_path / "losses.py"
    module.write_text("def doubled(y_true, y_pred):\n    return 2.0 * (y_true - y_pred) ** 2\n")
    assert named_loss(f"{module}:doubled").__name__ == "doubled"
    with pytest.raises(UserError, match="has no 'missing'"):
        named_loss(f"{module}:missing")


def test_a_bad_loss_name_is_one_line_naming_the_flag():
    with pytest.raises(UserError) as caught:
        named_loss("mse_typo")
    message = caught.value.in_flags()
    assert "\n" not in message and message.startswith("--loss 'mse_typo' is not a Keras loss")


def test_a_custom_loss_in_the_file_is_refused_and_never_imported(keras, tmp_path):
    path = _saved(keras, tmp_path, "custom", "mse")
    rewritten = tmp_path / "rewritten.keras"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(rewritten, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                config["compile_config"]["loss"] = {
                    "module": "os",
                    "class_name": "system",
                    "config": {"command": "touch pwned"},
                    "registered_name": "evil>Loss",
                }
                data = json.dumps(config).encode()
            target.writestr(item, data)
    model = keras.models.load_model(path, compile=False)
    with pytest.raises(UserError, match="custom loss 'evil>Loss'.*give `loss`") as caught:
        compiled_loss(model, rewritten)
    assert (
        caught.value.params == ("loss",) and "give --loss (a Keras loss" in caught.value.in_flags()
    )
    assert not (Path.cwd() / "pwned").exists()


def test_regression_mlp_gradual_prunes_to_half_with_its_compiled_mse(keras, tmp_path):
    from edgeprune.prune import prune_gradually

    data = _regression_data()
    model = regression_mlp()  # compiled with MSE
    spread = float(np.std(data.y_val))
    result = prune_gradually(
        model, data, 0.5, epochs=6, batch_size=16, learning_rate=3e-3, min_params=16
    )
    assert result.task is not None and result.task.name == "regression"
    assert result.loss is not None and result.loss.source == LOSS_COMPILED
    assert result.loss.name == "mse"
    assert result.metrics is not None and result.dense_metrics is not None
    assert {"rmse", "mae", "r2"} <= set(result.metrics)
    assert result.metrics["rmse"] < 0.6 * spread  # learned the targets while pruning
    assert result.accuracy is None and result.output_kind is None
    assert result.report.overall == pytest.approx(0.5, abs=0.02)
    assert result.to_dict()["loss"] == {"name": "mse", "source": "compiled"}


def test_huber_override_and_bad_loss_fail_before_training(keras):
    from edgeprune.prune import prune_gradually

    data = _regression_data()
    model = _mlp(keras)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(UserError, match="'nope' is not a Keras loss"):
        prune_gradually(model, data, 0.5, epochs=2, loss="nope", min_params=16)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    result = prune_gradually(model, data, 0.5, epochs=2, batch_size=32, loss="huber", min_params=16)
    assert result.loss is not None and result.loss.source == LOSS_OPTION
    assert model.loss is keras.losses.get("huber")


def test_channels_fine_tune_on_a_segmenter_reports_miou(keras):
    from edgeprune.api.transforms import prune_channels

    x, masks = disc_masks(96)
    model = unet()  # compiled with sparse cross-entropy on logits
    model.fit(x[:72], masks[:72], epochs=8, batch_size=16, verbose=0)
    data = Dataset("masks", x[:72], masks[:72], x[72:], masks[72:], ["bg", "disc", "square"])
    result = prune_channels(
        model, data=data, ratio=0.3, epochs=1, batch_size=16, granularity=1, min_filters=2
    )
    accuracy = result.report.accuracy
    assert accuracy is not None and accuracy["task"] == "segmentation"
    assert accuracy["metric"] == "miou" and accuracy["unit"] == "fraction"
    assert accuracy["loss"]["source"] == "compiled"
    for key in ("value", "value_before_pruning", "value_after_pruning"):
        assert 0.0 <= accuracy[key] <= 1.0
    assert accuracy["value_before_pruning"] > 0.4  # the trained U-Net segments
    assert "top1" not in accuracy
    assert result.model.count_params() < model.count_params()


def test_the_human_line_names_the_metric_in_its_unit():
    from edgeprune.prune.task_training import metric_change_text

    rmse = {"label": "RMSE", "unit": "value", "value": 0.13012, "dense_value": 0.12345}
    assert metric_change_text(rmse, "dense", "pruned") == "RMSE 0.1235 dense -> 0.1301 pruned"
    top1 = {"top1": 0.9712, "dense_top1": 0.98}  # a record from before tasks
    assert metric_change_text(top1, "dense", "pruned") == "top-1 98.00 % dense -> 97.12 % pruned"


def test_a_two_output_model_trains_on_per_output_labels(keras):
    from edgeprune.prune import prune_gradually

    x, y = regression_data(320)
    layers = keras.layers
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    hidden = layers.Dense(32, activation="relu", name="shared")(inputs)
    model = keras.Model(
        inputs,
        {"near": layers.Dense(1, name="near")(hidden), "far": layers.Dense(1, name="far")(hidden)},
    )
    labels = {"near": y, "far": -2.0 * y}
    train = {k: v[:240] for k, v in labels.items()}
    val = {k: v[240:] for k, v in labels.items()}
    data = Dataset("two", x[:240], train, x[240:], val, [])
    result = prune_gradually(
        model, data, 0.5, epochs=8, batch_size=16, learning_rate=1e-2, min_params=16
    )
    assert result.task is not None and result.task.name == "regression"
    assert result.loss is not None and result.loss.source == LOSS_TASK
    metrics = result.metrics or {}
    assert {"rmse/near", "rmse/far"} <= set(metrics), metrics
    assert metrics["rmse/far"] < 0.6 * float(np.std(val["far"]))  # each head learned its own target
    with pytest.raises(UserError, match="outputs are far, near; name them y_<output>"):
        prune_gradually(
            model,
            Dataset("one", x[:240], {"near": train["near"]}, x[240:], {"near": val["near"]}, []),
            0.5,
            epochs=1,
            min_params=16,
        )
