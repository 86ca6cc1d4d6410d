"""The sparse-path checks on multi-output graphs: two heads, two pooled branches, an FPN add,
a feature map that is also an output, detection heads without pooling.

For each graph the Keras prediction (`plan_keras_model`, before any conversion) and the
verdict on the converted `.tflite` (`check_sparse_path`) must agree: the same number of
clusters formed, and the same problem when none forms. The eligible graphs are then
pruned with `--policy xnnpack` and must really be eligible once stored sparse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeprune import _tf
from edgeprune.xnnpack import check_sparse_path, plan_keras_model


def _trunk(inputs: Any, layers: Any) -> Any:
    """Stem (pad + valid 3x3 stride 2) and one inverted block: the start of a sparse cluster."""
    x = layers.ZeroPadding2D(1, name="stem_pad")(inputs)
    x = layers.Conv2D(16, 3, strides=2, padding="valid", name="stem")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    h = layers.Conv2D(48, 1, name="b1_expand")(x)
    h = layers.ReLU(6.0, name="b1_expand_relu")(h)
    h = layers.DepthwiseConv2D(3, padding="same", name="b1_dw")(h)
    h = layers.ReLU(6.0, name="b1_dw_relu")(h)
    return layers.Conv2D(24, 1, name="b1_project")(h)


def build(variant: str, seed: int = 0) -> Any:
    keras = _tf.keras()
    layers = keras.layers
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((32, 32, 3), name="image")
    x = _trunk(inputs, layers)
    if variant == "two_heads":  # one pooled trunk, a class head and a box head
        pooled = layers.GlobalAveragePooling2D(name="pool")(layers.Conv2D(64, 1, name="head")(x))
        outputs: Any = [
            layers.Dense(4, name="classes")(pooled),
            layers.Dense(4, name="boxes")(pooled),
        ]
    elif variant == "two_pools":  # two 1x1 branches, each ending at its own MEAN
        a = layers.GlobalAveragePooling2D(name="pool_a")(layers.Conv2D(32, 1, name="head_a")(x))
        b = layers.GlobalAveragePooling2D(name="pool_b")(layers.Conv2D(16, 1, name="head_b")(x))
        outputs = {"a": layers.Dense(3, name="a")(a), "b": layers.Dense(2, name="b")(b)}
    elif variant == "fpn_add":  # a coarser level upsampled (bilinear) and added to a lateral
        h = layers.ZeroPadding2D(1, name="b2_pad")(layers.Conv2D(48, 1, name="b2_expand")(x))
        h = layers.DepthwiseConv2D(3, strides=2, padding="valid", name="b2_dw")(h)
        coarse = layers.Conv2D(24, 1, name="lat_coarse")(h)
        up = layers.UpSampling2D(2, interpolation="bilinear", name="up")(coarse)
        fused = layers.Add(name="fpn_add")([up, layers.Conv2D(24, 1, name="lat_fine")(x)])
        pooled = layers.GlobalAveragePooling2D(name="pool")(
            layers.Conv2D(64, 1, name="head")(fused)
        )
        outputs = [layers.Dense(4, name="classes")(pooled), layers.Dense(4, name="boxes")(pooled)]
    elif variant == "feature_output":  # the trunk's feature map is also a model output
        pooled = layers.GlobalAveragePooling2D(name="pool")(layers.Conv2D(64, 1, name="head")(x))
        outputs = {"classes": layers.Dense(4, name="classes")(pooled), "features": x}
    elif variant == "pooled_output":  # the MEAN that ends the cluster is also an output
        pooled = layers.GlobalAveragePooling2D(name="pool")(layers.Conv2D(64, 1, name="head")(x))
        outputs = {"embedding": pooled, "classes": layers.Dense(4, name="classes")(pooled)}
    elif variant == "nested_backbone":  # a two-output backbone model called inside another
        a = layers.GlobalAveragePooling2D(name="pool_a")(layers.Conv2D(32, 1, name="head_a")(x))
        b = layers.GlobalAveragePooling2D(name="pool_b")(layers.Conv2D(16, 1, name="head_b")(x))
        backbone = keras.Model(inputs, [a, b], name="backbone")
        outer = keras.Input((32, 32, 3), name="outer_image")
        pooled_a, pooled_b = backbone(outer)
        heads = [layers.Dense(3, name="a")(pooled_a), layers.Dense(2, name="b")(pooled_b)]
        return keras.Model(outer, heads, name=variant)
    elif variant == "concat_side":  # a cluster tensor also read by a CONCATENATION output
        pooled = layers.GlobalAveragePooling2D(name="pool")(layers.Conv2D(64, 1, name="head")(x))
        side = layers.Concatenate(name="side_cat")([x, layers.Conv2D(8, 1, name="side")(x)])
        outputs = [layers.Dense(4, name="classes")(pooled), side]
    elif variant == "conv_heads":  # detection heads as outputs: nothing ends the cluster
        outputs = [
            layers.Conv2D(6, 1, name="boxes")(x),
            layers.Conv2D(3, 1, name="scores")(x),
        ]
    else:
        raise ValueError(variant)
    return keras.Model(inputs, outputs, name=variant)


# variant -> (a cluster forms?, the problem code when none does)
VARIANTS = {
    "two_heads": (True, None),
    "two_pools": (True, None),
    "fpn_add": (True, None),
    "pooled_output": (True, None),
    "nested_backbone": (True, None),
    "feature_output": (False, "escape"),
    "concat_side": (False, "escape"),
    "conv_heads": (False, "no_end"),
}


def _zero_pointwise(model: Any, fraction: float = 0.9) -> None:
    for layer in model.layers:
        if hasattr(layer, "layers"):  # a nested backbone
            _zero_pointwise(layer, fraction)
        elif type(layer).__name__ == "Conv2D" and tuple(layer.kernel_size) == (1, 1):
            weights = layer.get_weights()
            flat = weights[0].reshape(-1).copy()
            flat[np.argsort(np.abs(flat), kind="stable")[: round(fraction * flat.size)]] = 0.0
            weights[0] = flat.reshape(weights[0].shape)
            layer.set_weights(weights)


def _convert(model: Any, path: Path) -> Path:
    from edgeprune.tflite import convert

    convert(model, path, sparse_weights=True, quantize="none")
    return path


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_keras_prediction_agrees_with_the_converted_graph(variant, tmp_path: Path):
    forms, code = VARIANTS[variant]
    model = build(variant)
    _zero_pointwise(model)
    plan = plan_keras_model(model)
    report = check_sparse_path(_convert(model, tmp_path / f"{variant}.tflite"))
    formed = [c for c in report.clusters if c.structure_ok]
    assert bool(plan.formed) is forms, [p.text() for p in plan.problems]
    assert len(plan.formed) == len(formed), report.verdict
    assert report.eligible is forms, report.verdict
    if not forms:
        assert code in {p.code for p in plan.problems}, [p.text() for p in plan.problems]
        assert code in {p.code for p in report.problems}, report.reasons


def test_two_pooled_branches_are_one_cluster_with_two_ends(tmp_path: Path):
    model = build("two_pools")
    _zero_pointwise(model)
    (cluster,) = plan_keras_model(model).formed
    assert len(cluster.ends) == 2
    report = check_sparse_path(_convert(model, tmp_path / "two_pools.tflite"))
    (converted,) = [c for c in report.clusters if c.sparse]
    assert sorted(n.op for n in converted.ends) == ["MEAN", "MEAN"]


@pytest.mark.parametrize("variant", ["two_heads", "fpn_add"])
def test_policy_xnnpack_prunes_multi_output_models_onto_the_sparse_path(variant, tmp_path: Path):
    from edgeprune.prune import prune_model

    model = build(variant)
    report = prune_model(model, 0.85, policy="xnnpack")
    pruned = {k.layer for k in report.kernels}
    assert "head" in pruned and "b1_expand" in pruned
    assert not pruned & {"classes", "boxes", "stem", "b1_dw"}
    plan = plan_keras_model(model)
    assert plan.zero_fraction is not None and plan.zero_fraction > 2 / 3
    verdict = check_sparse_path(_convert(model, tmp_path / f"{variant}.tflite"))
    assert verdict.eligible, verdict.verdict
    # the heads stay dense: only 1x1 convs of the cluster were pruned
    for name in ("classes", "boxes"):
        assert np.count_nonzero(model.get_layer(name).get_weights()[0] == 0) == 0


def _same_padded_detector() -> Any:
    """Stock-style stride-2 SAME convs (not sparse-path ready) feeding a dict of two heads."""
    keras = _tf.keras()
    layers = keras.layers
    keras.utils.set_random_seed(7)
    inputs = keras.Input((32, 32, 3), name="image")
    x = layers.Conv2D(16, 3, strides=2, padding="same", name="stem")(inputs)
    x = layers.Conv2D(32, 1, name="pw")(layers.ReLU(6.0, name="stem_relu")(x))
    coarse = layers.DepthwiseConv2D(3, strides=2, padding="same", name="dw2")(x)
    up = layers.UpSampling2D(2, interpolation="bilinear", name="up")(
        layers.Conv2D(32, 1, name="lat")(coarse)
    )
    fused = layers.Add(name="fpn_add")([up, x])
    pooled = layers.GlobalAveragePooling2D(name="pool")(layers.Conv2D(64, 1, name="head")(fused))
    heads = {
        "classes": layers.Dense(3, name="classes")(pooled),
        "boxes": layers.Dense(4, name="boxes")(pooled),
    }
    return keras.Model(inputs, heads, name="same_padded")


def test_xnnpack_fix_on_a_dict_output_model_compares_every_output(tmp_path: Path):
    from edgeprune.xnnpack.fix import output_change
    from edgeprune.xnnpack.fix_file import fix_model_file

    model = _same_padded_detector()
    assert not plan_keras_model(model).formed
    source = tmp_path / "det.keras"
    model.save(source)
    run = fix_model_file(source, tmp_path / "fixed.keras", samples=4)
    assert run.cluster_ready, run.remaining
    assert {r.layer for r in run.rewrites} >= {"stem", "dw2"}
    change = run.change
    assert change is not None and [o["name"] for o in change["outputs"]] == ["boxes", "classes"]
    assert change["max_abs"] == max(o["max_abs"] for o in change["outputs"]) > 0
    assert change["top1_agreement"] is None  # several outputs: no single top-1
    fixed = _tf.keras().models.load_model(tmp_path / "fixed.keras")
    assert sorted(fixed.output) == ["boxes", "classes"]
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    same = output_change(model, model, x)
    assert same["max_abs"] == 0.0 and len(same["outputs"]) == 2
