"""Fine-tuning picks its loss from the model's final activation and checks the data first."""

from __future__ import annotations

import numpy as np
import pytest

from edgeprune import _tf
from edgeprune.channels.finetune import check_data_fits, finetune, output_activation, training_loss
from edgeprune.data import Dataset
from edgeprune.errors import UserError


def _model(head: str):
    keras = _tf.keras()
    layers = keras.layers
    inputs = keras.Input((6, 6, 3))
    x = layers.Conv2D(16, 3, name="conv")(inputs)
    x = layers.GlobalAveragePooling2D()(x)
    if head == "dense_softmax":
        outputs = layers.Dense(4, activation="softmax")(x)
    elif head == "softmax_after_flatten":
        x = layers.Reshape((1, 1, 16))(x)
        x = layers.Conv2D(4, 1)(x)
        outputs = layers.Activation("softmax")(layers.Flatten()(x))
    elif head == "softmax_layer":
        outputs = layers.Softmax()(layers.Dropout(0.1)(layers.Dense(4)(x)))
    elif head == "sigmoid":
        outputs = layers.Dense(4, activation="sigmoid")(x)
    else:
        outputs = layers.Dense(4)(x)
    return keras.Model(inputs, outputs, name=head)


@pytest.mark.parametrize(
    ("head", "activation"),
    [
        ("dense_softmax", "softmax"),
        ("softmax_after_flatten", "softmax"),
        ("softmax_layer", "softmax"),
        ("sigmoid", "sigmoid"),
        ("logits", "linear"),
    ],
)
def test_output_activation_is_found_through_passive_layers(head, activation):
    assert output_activation(_model(head)) == activation


def test_loss_follows_the_activation_and_nested_models_are_followed():
    keras = _tf.keras()
    assert training_loss(_model("dense_softmax")).get_config()["from_logits"] is False
    assert training_loss(_model("logits")).get_config()["from_logits"] is True
    with pytest.raises(UserError, match="ends in 'sigmoid'"):
        training_loss(_model("sigmoid"))
    nested = keras.Sequential([keras.Input((6, 6, 3)), _model("dense_softmax")])
    assert output_activation(nested) == "softmax"


def _dataset(shape, classes, count=40):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(count, *shape)).astype(np.float32)
    y = np.arange(count) % classes
    return Dataset("random", x[:30], y[:30], x[30:], y[30:], [str(i) for i in range(classes)])


def test_finetune_trains_and_reports_top1():
    model = _model("dense_softmax")
    result = finetune(model, _dataset((6, 6, 3), 4), epochs=1, batch_size=8)
    assert 0.0 <= result["top1"] <= 1.0 and np.isfinite(result["loss"])
    assert model.loss.get_config()["from_logits"] is False


@pytest.mark.parametrize(("decay", "final_rate"), [("constant", 1e-3), ("cosine", 0.0)])
def test_the_learning_rate_decays_to_zero_by_the_last_step_with_cosine(decay, final_rate):
    """The optimizer that trained the model ran every step, and with cosine its rate has
    reached 0 by the last one (30 samples in batches of 8: 4 steps per epoch)."""
    model = _model("logits")
    finetune(model, _dataset((6, 6, 3), 4), epochs=2, batch_size=8, learning_rate_decay=decay)
    assert int(model.optimizer.iterations) == 8
    assert float(model.optimizer.learning_rate) == pytest.approx(final_rate, abs=1e-9)


def test_an_unknown_decay_is_refused_by_its_name():
    with pytest.raises(UserError, match="^learning_rate_decay 'linear' is not one of") as caught:
        finetune(_model("logits"), _dataset((6, 6, 3), 4), epochs=1, learning_rate_decay="linear")
    assert caught.value.in_flags().startswith("--learning-rate-decay 'linear'")


def test_data_that_does_not_fit_is_refused():
    model = _model("logits")
    with pytest.raises(UserError, match="has 7 classes but logits outputs 4"):
        check_data_fits(model, _dataset((6, 6, 3), 7))
    with pytest.raises(UserError, match="7 classes"):
        check_data_fits(model, _dataset((6, 6, 3), 7), {"task": "classification"})
    with pytest.raises(UserError, match=r"samples of shape \(5, 5, 3\)"):
        check_data_fits(model, _dataset((5, 5, 3), 4))
    with pytest.raises(UserError, match="^epochs must be >= 1") as caught:
        finetune(model, _dataset((6, 6, 3), 4), epochs=0)
    assert caught.value.in_flags().startswith("--epochs must be >= 1")
