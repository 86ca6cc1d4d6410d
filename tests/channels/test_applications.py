"""keras.applications models (weights=None) prune, stay exact at ratio 0, convert and run on LiteRT."""

from __future__ import annotations

import numpy as np
import pytest

from channels.toy_models import max_abs_diff, run_tflite, sample_inputs, to_tflite
from edgeprune import _tf
from edgeprune.channels import prune_channels

SIZE = 64  # the smallest size all five accept is 32; 64 keeps every stage's map > 1x1
ARCHITECTURES = ["MobileNetV2", "MobileNetV3Small", "ResNet50", "EfficientNetB0", "DenseNet121"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ARCHITECTURES)
def test_application_prunes_converts_and_runs(name):
    keras = _tf.keras()
    keras.utils.set_random_seed(0)
    build = getattr(keras.applications, name)
    model = build(input_shape=(SIZE, SIZE, 3), weights=None, classes=10)
    x = sample_inputs((SIZE, SIZE, 3), count=2)

    same, _ = prune_channels(model, ratio=0.0)
    assert max_abs_diff(model, same, x) <= 1e-5

    pruned, report = prune_channels(model, ratio=0.5)
    assert 0.4 <= report.removed_fraction <= 0.55
    assert report.params_after < 0.5 * report.params_before
    assert report.macs_after < 0.5 * report.macs_before
    assert report.unknown_layers == []
    pruned_groups = [g for g in report.groups if g.status == "pruned"]
    assert len(pruned_groups) >= 10
    assert all(g.filters_after % 8 == 0 for g in pruned_groups)  # granularity 8
    assert all(g.filters_after >= 16 for g in pruned_groups)  # min_filters 16

    keras_out = np.asarray(pruned(x, training=False))
    lite_out = run_tflite(to_tflite(pruned), x)
    assert lite_out.shape == keras_out.shape == tuple(np.asarray(model(x, training=False)).shape)
    np.testing.assert_allclose(lite_out, keras_out, atol=2e-5)
