"""Every mistake a user can make gets one clear line (UserError), not a traceback or a broken model."""

from __future__ import annotations

import math

import pytest

from channels.toy_models import build_toy_model
from edgeprune import _tf
from edgeprune.channels import prune_channels
from edgeprune.errors import UserError


@pytest.fixture(scope="module")
def toy():
    return build_toy_model()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ratio": -0.1}, r"^ratio -0.1 is outside \[0, 0.95\]"),
        ({"ratio": 0.96}, r"^ratio 0.96 is outside \[0, 0.95\]"),
        ({"ratio": 1.0}, r"outside \[0, 0.95\]"),
        ({"ratio": math.nan}, "finite number"),
        ({"ratio": "half"}, "^ratio must be a number"),
        ({"ratio": True}, "^ratio must be a number"),
        ({"ratio": 0.5, "threshold": 0.1}, "not both"),
        ({"threshold": -0.5}, "^threshold -0.5 is negative"),
        ({"threshold": math.inf}, "finite number"),
        ({"criterion": "l3"}, "^criterion 'l3' is not one of: l1, l2"),
        ({"normalizer": "mean"}, "^normalizer 'mean' is not one of: max, l2"),
        ({"equalization": "sum"}, "^equalization 'sum' is not one of: union, intersection"),
        ({"granularity": 0}, "^granularity must be a whole number >= 1"),
        ({"granularity": 2.5}, "^granularity must be a whole number >= 1"),
        ({"min_filters": 0}, "^min_filters must be a whole number >= 1"),
        ({"exclude": ["no_such_layer*"]}, r"^exclude 'no_such_layer\*' matches no layer"),
        ({"exclude": [""]}, "empty name"),
        ({"learning_rate_decay": "step"}, "^learning_rate_decay 'step' is not one of"),
        ({"learning_rate_decay": "cosine"}, "^learning_rate_decay shapes the fine-tune"),
    ],
)
def test_bad_options_are_user_errors(toy, options, message):
    with pytest.raises(UserError, match=message) as caught:
        prune_channels(toy, **options)
    flags = caught.value.in_flags()
    for name in caught.value.params:
        assert "--" + name.replace("_", "-") in flags, flags


def test_subclassed_model_suggests_the_functional_api():
    keras = _tf.keras()

    class Tiny(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(8, 3)

        def call(self, x):
            return self.conv(x)

    model = Tiny()
    model(keras.ops.zeros((1, 8, 8, 3)))
    with pytest.raises(UserError, match=r"subclassed keras.Model .*functional API"):
        prune_channels(model, ratio=0.5)


def test_sequential_without_input_shape_says_how_to_fix():
    keras = _tf.keras()
    model = keras.Sequential([keras.layers.Conv2D(8, 3), keras.layers.Dense(2)])
    with pytest.raises(UserError, match=r"no input shape yet; add keras.Input"):
        prune_channels(model, ratio=0.5)


def test_not_a_model_is_refused():
    keras = _tf.keras()
    with pytest.raises(UserError, match="expected a Keras model, got Conv2D"):
        prune_channels(keras.layers.Conv2D(4, 1), ratio=0.5)
    with pytest.raises(UserError, match="expected a Keras model, got str"):
        prune_channels("model.keras", ratio=0.5)


def test_the_input_model_is_left_untouched(toy):
    before = [w.copy() for w in toy.get_weights()]
    counts = [len(layer._inbound_nodes) for layer in toy.layers]
    prune_channels(toy, ratio=0.9)
    after = toy.get_weights()
    assert all((a == b).all() for a, b in zip(before, after, strict=True))
    assert [len(layer._inbound_nodes) for layer in toy.layers] == counts
