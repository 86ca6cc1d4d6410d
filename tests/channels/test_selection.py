"""Which filters go: norms, normalizers, equalization over tied layers, granularity, minimums."""

from __future__ import annotations

import numpy as np
import pytest

from channels.toy_models import build_toy_model, sample_inputs
from edgeprune import _tf
from edgeprune.channels import prune_channels
from edgeprune.channels.criteria import equalize, kept_count, normalize


def test_normalizers_follow_tao():
    norms = np.array([1.0, 2.0, 2.0])
    np.testing.assert_allclose(normalize(norms, "max"), [0.5, 1.0, 1.0])
    np.testing.assert_allclose(normalize(norms, "l2"), [1 / 3, 2 / 3, 2 / 3])
    assert np.all(normalize(np.zeros(3), "max") == 0)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("union", 0.8), ("intersection", 0.2), ("arithmetic_mean", 0.5), ("geometric_mean", 0.4)],
)
def test_equalization_merges_votes(mode, expected):
    assert equalize([0.2, 0.8], mode) == pytest.approx(expected)


def test_kept_count_rounds_up_to_granularity_and_holds_the_minimum():
    assert kept_count(24, 12, granularity=8, min_filters=16) == 16
    assert kept_count(96, 48, granularity=8, min_filters=16) == 48
    assert kept_count(96, 0, granularity=8, min_filters=16) == 16
    assert kept_count(96, 41, granularity=8, min_filters=16) == 48
    assert kept_count(12, 3, granularity=8, min_filters=16) == 12  # never more than there are
    assert kept_count(30, 30, granularity=8, min_filters=1) == 30


def _two_filter_model():
    """One 1x1 conv with filter A = [1,1,1,1] (L1 4, L2 2) and B = [3,0,0,0] (L1 3, L2 3)."""
    keras = _tf.keras()
    inputs = keras.Input((4, 4, 4))
    x = keras.layers.Conv2D(2, 1, use_bias=False, name="c")(inputs)
    outputs = keras.layers.Dense(3, name="out")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    kernel = np.zeros((1, 1, 4, 2), np.float32)
    kernel[0, 0, :, 0] = 1.0
    kernel[0, 0, 0, 1] = 3.0
    model.get_layer("c").set_weights([kernel])
    return model


@pytest.mark.parametrize(("criterion", "kept"), [("l1", 0), ("l2", 1)])
def test_criterion_decides_which_filter_survives(criterion, kept):
    model = _two_filter_model()
    pruned, _ = prune_channels(model, ratio=0.5, criterion=criterion, granularity=1, min_filters=1)
    original = model.get_layer("c").get_weights()[0]
    np.testing.assert_array_equal(
        pruned.get_layer("c").get_weights()[0], original[..., kept : kept + 1]
    )
    dense = model.get_layer("out").get_weights()[0]
    np.testing.assert_array_equal(pruned.get_layer("out").get_weights()[0], dense[kept : kept + 1])


def _residual_model():
    keras = _tf.keras()
    inputs = keras.Input((6, 6, 8))
    a = keras.layers.Conv2D(16, 1, name="a")(inputs)
    b = keras.layers.Conv2D(16, 3, padding="same", name="b")(inputs)
    x = keras.layers.Add(name="add")([a, b])
    outputs = keras.layers.Dense(2, name="out")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    kernel, bias = model.get_layer("a").get_weights()
    kernel[..., 3] = 0.0
    model.get_layer("a").set_weights([kernel, bias])
    return model


@pytest.mark.parametrize(
    ("equalization", "kept"),
    [("union", 16), ("intersection", 15), ("arithmetic_mean", 16), ("geometric_mean", 15)],
)
def test_equalization_decides_for_layers_tied_by_add(equalization, kept):
    pruned, report = prune_channels(
        _residual_model(),
        threshold=1e-9,
        equalization=equalization,
        granularity=1,
        min_filters=1,
    )
    assert report.layers["a"]["after"] == report.layers["b"]["after"] == kept
    assert pruned.get_layer("add").output.shape[-1] == kept
    assert len(report.groups) == 2  # {a, b} and the fixed output layer


def test_threshold_that_removes_everything_still_keeps_min_filters():
    model = build_toy_model()
    pruned, report = prune_channels(model, threshold=10.0, min_filters=8, granularity=4)
    pruned_groups = [g for g in report.groups if g.status != "fixed"]
    assert pruned_groups
    for group in pruned_groups:
        assert group.filters_after == min(8, group.filters_before), group.name
    assert any("below the threshold" in note for note in report.notes)
    assert pruned(sample_inputs((16, 16, 3), count=1)).shape == (1, 5)


def test_default_threshold_is_taos_and_ratio_removes_about_half():
    model = build_toy_model()
    _, by_threshold = prune_channels(model)
    assert by_threshold.options["threshold"] == 0.1 and by_threshold.options["ratio"] is None
    _, half = prune_channels(model, ratio=0.5, granularity=1, min_filters=1)
    assert 0.45 <= half.removed_fraction <= 0.55
    assert half.macs_after < 0.5 * half.macs_before


def test_exclude_by_glob_and_by_nested_path():
    model = build_toy_model()
    _, report = prune_channels(model, ratio=0.5, exclude=("res_*", "cat_a"))
    assert report.layers["res_a"]["after"] == 24 and report.layers["se_expand"]["after"] == 24
    assert report.layers["cat_a"]["after"] == 12
    assert report.layers["sep"]["after"] == 16  # 20 -> 10, held at --min-filters 16
    keras = _tf.keras()
    inputs = keras.Input((16, 16, 3))
    outer = keras.Model(inputs, keras.layers.Dense(2, name="head")(model(inputs)))
    _, nested = prune_channels(outer, ratio=0.5, min_filters=4, granularity=4, exclude=["toy/stem"])
    assert nested.layers["toy/stem"]["after"] == 16
    assert nested.layers["toy/hidden"]["after"] == 16
    _, whole = prune_channels(outer, ratio=0.5, min_filters=4, granularity=4, exclude=["toy"])
    assert all(c["after"] == c["before"] for c in whole.layers.values())
