"""`--policy xnnpack`: the Keras-side prediction agrees with the .tflite verdict, and pruning
touches only the 1x1 convs of the cluster(s); a model that cannot form one fails first."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeprune.errors import UserError
from edgeprune.prune import prune_model
from edgeprune.xnnpack import check_sparse_path
from edgeprune.xnnpack.policy import plan_keras_model
from xnnpack.models import TINY_VARIANTS, tiny

POINTWISE = {"b1_expand", "b1_project", "b2_expand", "b2_project", "head"}


@pytest.mark.parametrize("variant", sorted(TINY_VARIANTS))
def test_keras_prediction_matches_the_converted_graph(tiny_tflite, variant):
    plan = plan_keras_model(tiny(variant))
    converted = check_sparse_path(tiny_tflite(variant))
    assert bool(plan.formed) == any(c.structure_ok for c in converted.clusters), (
        [p.text() for p in plan.problems],
        converted.reasons,
    )


def test_the_layer_at_fault_is_named():
    plan = plan_keras_model(tiny("dw_same_s2"))
    assert not plan.formed
    assert plan.problems[0].label == "layer 'b2_dw' (DepthwiseConv2D)"
    assert "ZeroPadding2D(1) + padding='valid'" in plan.problems[0].message


def test_policy_prunes_only_the_cluster_pointwise_convs():
    model = tiny("rich")
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.layers}
    report = prune_model(model, 0.8, policy="xnnpack", min_params=0)
    pruned = {k.layer for k in report.kernels}
    assert pruned == POINTWISE | {"b1_se_reduce", "b1_se_expand"}
    for layer in model.layers:
        weights = layer.get_weights()
        if layer.name in pruned:
            kernel = weights[0]
            assert kernel.shape[:2] == (1, 1)
            assert abs(1 - np.count_nonzero(kernel) / kernel.size - 0.8) < 0.02
        else:  # the first conv, the depthwise convs and the classifier stay as they were
            for old, new in zip(before[layer.name], weights, strict=True):
                np.testing.assert_array_equal(old, new)


def test_policy_refuses_a_model_without_a_cluster_before_changing_anything():
    model = tiny("stem_same")
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(UserError, match=r"layer 'stem' \(Conv2D\): stride-2 SAME padding"):
        prune_model(model, 0.9, policy="xnnpack")
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


def test_cli_names_the_layer_and_writes_nothing(run_cli, tmp_path):
    source = tmp_path / "stem_same.keras"
    tiny("stem_same").save(source)
    out = tmp_path / "out.keras"
    outcome = run_cli("prune", source, "-o", out, "--sparsity", "0.9", "--policy", "xnnpack")
    assert outcome.code == 2
    assert "layer 'stem' (Conv2D)" in outcome.err and "Traceback" not in outcome.err
    assert not out.exists() and not (tmp_path / "out.keras.json").exists()


def test_inspect_keras_shows_the_prediction(run_cli, tmp_path):
    source = tmp_path / "base.keras"
    tiny("base").save(source)
    outcome = run_cli("inspect", source, "--json")
    assert outcome.code == 0, outcome.err
    section = json.loads(outcome.out)["xnnpack"]
    assert section["predicted"] and section["cluster_ready"]
    assert set(section["pointwise_layers"]) == POINTWISE
    text = run_cli("inspect", source)
    assert "XNNPACK sparse path (predicted from the layers)" in text.out
