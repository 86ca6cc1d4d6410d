"""Pruned models compute what the original computes: ratio 0, zeroed filters, nesting, reload."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from channels.toy_models import (
    TOY_SHAPE,
    build_toy_model,
    max_abs_diff,
    run_tflite,
    sample_inputs,
    to_tflite,
    zero_channels,
)
from edgeprune import _tf
from edgeprune.channels import prune_channels

# Channels zeroed in the toy model: every layer that produces or carries them, so their
# activations are exactly 0 and removing them cannot change the output.
ZEROED = {
    "stem": [1, 6],
    "stem_bn": [1, 6],
    "dw": [1, 6],
    "dw_bn": [2, 3, 12, 13],  # depth multiplier 2: channel c -> outputs 2c, 2c+1
    "res_a": [0, 5, 23],
    "res_a_bn": [0, 5, 23],
    "res_b": [0, 5, 23],
    "res_b_bn": [0, 5, 23],
    "se_expand": [0, 5, 23],  # tied to the residual by the squeeze-excite Multiply
    "se_reduce": [2],
    "sep": [3, 4],
    "cat_a": [7],
    "cat_b": [0, 11],
    "cat_bn": [7, 12, 23],  # concat offsets: cat_b's channel c is cat_bn's 12 + c
    "head_conv": [9],  # followed by Flatten: rows p*16+9 of the Dense go
    "hidden": [4, 30],
}
EXPECTED_FILTERS = {
    "stem": 14,
    "res_a": 21,
    "res_b": 21,
    "se_expand": 21,
    "se_reduce": 7,
    "sep": 18,
    "cat_a": 11,
    "cat_b": 10,
    "head_conv": 15,
    "hidden": 30,
    "logits": 5,
}


@pytest.fixture(scope="module")
def toy():
    return build_toy_model()


def test_ratio_zero_returns_the_same_function(toy):
    pruned, report = prune_channels(toy, ratio=0.0)
    x = sample_inputs(TOY_SHAPE)
    assert max_abs_diff(toy, pruned, x) <= 1e-5
    assert report.params_after == report.params_before
    assert all(g.filters_after == g.filters_before for g in report.groups)
    assert pruned is not toy and pruned.layers[1] is not toy.layers[1]


def test_zeroed_filters_are_removed_exactly():
    model = build_toy_model(seed=3)
    zero_channels(model, ZEROED)
    pruned, report = prune_channels(model, threshold=1e-9, granularity=1, min_filters=1)
    filters = {name: counts["after"] for name, counts in report.layers.items()}
    assert filters == EXPECTED_FILTERS
    assert pruned.get_layer("dw").get_weights()[0].shape[-2] == 14
    assert pruned.get_layer("hidden").get_weights()[0].shape == (4 * 4 * 15, 30)
    x = sample_inputs(TOY_SHAPE, count=8)
    assert max_abs_diff(model, pruned, x) <= 1e-5
    groups = {g.name: g for g in report.groups}
    assert set(groups["res_b"].layers) >= {"res_a", "res_b", "se_expand"}
    assert groups["logits"].status == "fixed" and groups["logits"].reason == "model output"
    assert report.params_after < report.params_before and report.macs_after < report.macs_before


def test_pruned_model_keeps_names_and_configs_and_reloads_alone(toy, tmp_path: Path):
    keras = _tf.keras()
    pruned, _ = prune_channels(toy, ratio=0.5, granularity=4, min_filters=4)
    assert [layer.name for layer in pruned.layers] == [layer.name for layer in toy.layers]
    for old, new in zip(toy.layers, pruned.layers, strict=True):
        old_config, new_config = old.get_config(), new.get_config()
        for key in ("filters", "units", "target_shape"):
            old_config.pop(key, None)
            new_config.pop(key, None)
        assert old_config == new_config, old.name
    assert pruned.get_layer("stem").filters == 8
    assert type(pruned).__name__ == "Functional"
    path = tmp_path / "pruned.keras"
    pruned.save(path)
    reloaded = keras.models.load_model(path)
    x = sample_inputs(TOY_SHAPE)
    assert max_abs_diff(pruned, reloaded, x) == 0.0


def test_nested_sequential_base_and_head_is_pruned_inside():
    keras = _tf.keras()
    base = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), include_top=False, weights=None, alpha=0.35
    )
    model = keras.Sequential(
        [base, keras.layers.GlobalAveragePooling2D(name="pool"), keras.layers.Dense(3, name="out")],
        name="transfer",
    )
    model.build((None, 32, 32, 3))
    x = sample_inputs((32, 32, 3), count=2)
    same, _ = prune_channels(model, ratio=0.0)
    assert max_abs_diff(model, same, x) <= 1e-5

    pruned, report = prune_channels(model, ratio=0.5)
    assert type(pruned).__name__ == "Sequential"
    inner = pruned.layers[0]
    assert inner.name == base.name and type(inner).__name__ == "Functional"
    # base's last conv feeds the outer Dense through the pool: both shrink together
    last = f"{base.name}/Conv_1"
    assert report.layers[last] == {"before": 1280, "after": 640}
    assert pruned.get_layer("out").get_weights()[0].shape == (640, 3)
    assert pruned(x).shape == model(x).shape


def test_functional_wrapper_around_a_base_model_and_tflite_matches():
    keras = _tf.keras()
    base = build_toy_model()
    inputs = keras.Input(TOY_SHAPE, name="outer_in")
    features = base(inputs)
    outputs = keras.layers.Dense(2, activation="softmax", name="head")(features)
    model = keras.Model(inputs, outputs, name="outer")
    pruned, report = prune_channels(model, ratio=0.5, granularity=4, min_filters=4)
    # base's logits are no longer a model output, so they can be pruned too
    assert report.layers["toy/logits"] == {"before": 5, "after": 4}
    assert pruned.get_layer("head").get_weights()[0].shape == (4, 2)
    x = sample_inputs(TOY_SHAPE, count=3)
    keras_out = np.asarray(pruned(x, training=False))
    lite_out = run_tflite(to_tflite(pruned, frozen=False), x)
    assert lite_out.shape == keras_out.shape == (3, 2)
    np.testing.assert_allclose(lite_out, keras_out, atol=1e-5)


def test_unknown_layer_keeps_its_channels_and_is_named():
    keras = _tf.keras()

    class ChannelScale(keras.layers.Layer):
        def build(self, input_shape):
            self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.scale

    inputs = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(32, 3, name="before_custom")(inputs)
    b = ChannelScale(name="custom")(a)
    c = keras.layers.Conv2D(32, 3, name="after_custom")(b)
    outputs = keras.layers.Dense(4, name="out")(keras.layers.GlobalAveragePooling2D()(c))
    model = keras.Model(inputs, outputs)
    pruned, report = prune_channels(model, ratio=0.5)
    assert report.layers["before_custom"]["after"] == 32  # feeds the unknown layer
    assert report.layers["after_custom"]["after"] == 16
    assert report.unknown_layers == ["custom"]
    groups = {g.name: g for g in report.groups}
    assert groups["before_custom"].status == "fixed"
    assert "custom" in groups["before_custom"].reason
    x = sample_inputs((8, 8, 3), count=2)
    assert pruned(x).shape == (2, 4)


def test_shared_layer_and_excluded_layer_keep_their_filters():
    keras = _tf.keras()
    inputs = keras.Input((8, 8, 16))
    shared = keras.layers.Conv2D(16, 1, name="shared")
    x = shared(shared(inputs))
    y = keras.layers.Conv2D(32, 1, name="kept_by_exclude")(x)
    z = keras.layers.Conv2D(32, 1, name="free")(y)
    outputs = keras.layers.Dense(2, name="out")(keras.layers.GlobalMaxPooling2D()(z))
    model = keras.Model(inputs, outputs)
    pruned, report = prune_channels(model, ratio=0.5, exclude=["kept_by_*"])
    assert report.layers["shared"]["after"] == 16
    assert report.layers["kept_by_exclude"]["after"] == 32
    assert report.layers["free"]["after"] == 16
    reasons = {g.name: g.reason for g in report.groups}
    assert "excluded" in reasons["kept_by_exclude"]
    assert "shared" in reasons["shared"]
    x = sample_inputs((8, 8, 16), count=2)
    assert pruned(x).shape == (2, 2)


def test_transposed_grouped_merges_and_layer_norm():
    keras = _tf.keras()
    layers = keras.layers
    inputs = keras.Input((8, 8, 4))
    up = layers.Conv2DTranspose(16, 3, strides=2, padding="same", name="up")(inputs)
    grouped = layers.Conv2D(16, 3, padding="same", groups=2, name="grouped")(up)
    a = layers.Conv2D(32, 1, name="m_a")(grouped)
    b = layers.Conv2D(32, 1, name="m_b")(grouped)
    c = layers.Conv2D(32, 1, name="m_c")(grouped)
    merged = layers.Average()([layers.Subtract()([layers.Maximum()([a, b]), c]), a])
    normed = layers.LayerNormalization(name="ln")(merged)
    d = layers.Conv2DTranspose(32, 1, name="after_ln")(normed)
    outputs = layers.Dense(3, activation="softmax", name="probs")(
        layers.GlobalAveragePooling2D()(d)
    )
    model = keras.Model(inputs, outputs)
    x = sample_inputs((8, 8, 4), count=2)
    same, _ = prune_channels(model, ratio=0.0)
    assert max_abs_diff(model, same, x) <= 1e-5
    pruned, report = prune_channels(model, ratio=0.5)
    after = {name: c["after"] for name, c in report.layers.items()}
    assert after == {"up": 16, "m_a": 32, "m_b": 32, "m_c": 32, "after_ln": 16, "probs": 3}
    skipped = {s["name"]: s for s in report.skipped_layers}
    assert skipped["grouped"]["reason"] == "grouped convolution"
    assert skipped["ln"]["reason"] == "normalises across channels"
    assert not skipped["ln"]["unknown"] and report.unknown_layers == []
    groups = {g.name: g for g in report.groups}
    assert set(groups["m_a"].layers) == {"m_a", "m_b", "m_c"}
    assert pruned(x).shape == (2, 3)


def test_conv1d_sequence_model():
    keras = _tf.keras()
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((20, 6)),
            layers.Conv1D(32, 3, name="c1"),
            layers.BatchNormalization(name="bn"),
            layers.ReLU(),
            layers.Conv1D(32, 3, name="c2"),
            layers.GlobalMaxPooling1D(),
            layers.Dense(4, name="out"),
        ]
    )
    x = sample_inputs((20, 6), count=2)
    pruned, report = prune_channels(model, ratio=0.5)
    assert report.layers["c1"] == {"before": 32, "after": 16}
    assert report.layers["c2"] == {"before": 32, "after": 16}
    assert pruned.get_layer("out").get_weights()[0].shape == (16, 4)
    assert pruned(x).shape == (2, 4)
