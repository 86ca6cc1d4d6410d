"""Channel pruning on multi-output and multi-path graphs: U-Net skips, FPN adds, several heads.

Zeroed filters (exactly 0 after their activation) must be removed without changing any
output; a ratio prune must keep every Concatenate and Add consistent, every model output
whole, the output structure (names, dict keys) as it was, and the result must convert and
run in TFLite.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from channels.toy_models import sample_inputs, to_tflite, zero_channels
from edgeprune import _tf
from edgeprune.channels import prune_channels


def build_unet(seed: int = 0) -> Any:
    """Two-level U-Net: a transposed-conv skip and an upsampled skip, 4-class mask logits."""
    keras = _tf.keras()
    layers = keras.layers
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((16, 16, 3), name="image")
    e1 = layers.Conv2D(12, 3, padding="same", activation="relu", name="enc1")(inputs)
    e2 = layers.Conv2D(16, 3, padding="same", activation="relu", name="enc2")(
        layers.MaxPooling2D(name="pool1")(e1)
    )
    bottom = layers.Conv2D(24, 3, padding="same", activation="relu", name="bottom")(
        layers.MaxPooling2D(name="pool2")(e2)
    )
    up2 = layers.Conv2DTranspose(16, 2, strides=2, padding="same", name="up2")(bottom)
    d2 = layers.Conv2D(16, 3, padding="same", activation="relu", name="dec2")(
        layers.Concatenate(name="skip2")([up2, e2])
    )
    up1 = layers.UpSampling2D(name="up1")(d2)
    d1 = layers.Conv2D(12, 3, padding="same", activation="relu", name="dec1")(
        layers.Concatenate(name="skip1")([up1, e1])
    )
    masks = layers.Conv2D(4, 1, name="mask_logits")(d1)
    return keras.Model(inputs, masks, name="unet")


def build_fpn_detector(seed: int = 0) -> Any:
    """Three-level FPN (top-down Adds of upsampled laterals) with a box head per level."""
    keras = _tf.keras()
    layers = keras.layers
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((32, 32, 3), name="image")
    c3 = layers.Conv2D(12, 3, strides=2, padding="same", activation="relu", name="c3")(inputs)
    c4 = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="c4")(c3)
    c5 = layers.Conv2D(24, 3, strides=2, padding="same", activation="relu", name="c5")(c4)
    p5 = layers.Conv2D(16, 1, name="lat5")(c5)
    p4 = layers.Add(name="td4")(
        [layers.UpSampling2D(name="up5")(p5), layers.Conv2D(16, 1, name="lat4")(c4)]
    )
    p3 = layers.Add(name="td3")(
        [layers.UpSampling2D(name="up4")(p4), layers.Conv2D(16, 1, name="lat3")(c3)]
    )
    outputs = {}
    for level, feature in (("p3", p3), ("p4", p4), ("p5", p5)):
        hidden = layers.Conv2D(16, 3, padding="same", activation="relu", name=f"{level}_head")(
            feature
        )
        outputs[f"{level}_boxes"] = layers.Conv2D(4 + 2, 1, name=f"{level}_boxes")(hidden)
    return keras.Model(inputs, outputs, name="fpn")


def build_two_heads(seed: int = 0) -> Any:
    """A shared trunk with a class head and a box head (list outputs), as a small SSD has."""
    keras = _tf.keras()
    layers = keras.layers
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((16, 16, 3), name="image")
    x = layers.Conv2D(12, 3, activation="relu", name="trunk1")(inputs)
    x = layers.Conv2D(16, 3, activation="relu", name="trunk2")(x)
    pooled = layers.GlobalAveragePooling2D(name="pool")(x)
    classes = layers.Dense(5, name="classes")(pooled)
    boxes = layers.Dense(4, name="boxes")(
        layers.Dense(20, activation="relu", name="box_hidden")(pooled)
    )
    return keras.Model(inputs, [classes, boxes], name="two_heads")


def flat_outputs(model: Any, x: np.ndarray) -> list[np.ndarray]:
    keras = _tf.keras()
    return [np.asarray(t) for t in keras.tree.flatten(model(x, training=False))]


def assert_same_outputs(a: Any, b: Any, x: np.ndarray, tolerance: float = 1e-5) -> None:
    first, second = flat_outputs(a, x), flat_outputs(b, x)
    assert len(first) == len(second)
    for one, two in zip(first, second, strict=True):
        assert one.shape == two.shape
        assert float(np.max(np.abs(one - two))) <= tolerance


def test_unet_zeroed_filters_feeding_skips_are_removed_exactly():
    model = build_unet(seed=3)
    # enc1 feeds pool1 (-> enc2) and skip1 at offset 16; up2 feeds skip2 at offset 0
    zero_channels(model, {"enc1": [2, 7], "enc2": [0, 9, 15], "dec2": [1, 5]})
    up2 = model.get_layer("up2")  # a transposed kernel is (h, w, out, in)
    kernel, bias = up2.get_weights()
    kernel[..., 4, :] = 0.0
    bias[4] = 0.0
    up2.set_weights([kernel, bias])
    pruned, report = prune_channels(model, threshold=1e-9, granularity=1, min_filters=1)
    after = {name: counts["after"] for name, counts in report.layers.items()}
    assert after["enc1"] == 10 and after["enc2"] == 13 and after["up2"] == 15
    assert after["dec2"] == 14 and after["mask_logits"] == 4
    # dec1 reads skip1 = [up1 (dec2's 14), enc1's 10]; dec2 reads [up2's 15, enc2's 13]
    assert pruned.get_layer("dec1").get_weights()[0].shape[2] == 14 + 10
    assert pruned.get_layer("dec2").get_weights()[0].shape[2] == 15 + 13
    assert_same_outputs(model, pruned, sample_inputs((16, 16, 3), count=4))


def test_unet_ratio_prune_keeps_concat_consistent_and_runs_in_tflite():
    model = build_unet()
    pruned, report = prune_channels(model, ratio=0.3, granularity=2, min_filters=2)
    assert report.params_after < report.params_before
    widths = {layer.name: layer for layer in pruned.layers}
    for concat, parts in (("skip2", ("up2", "enc2")), ("skip1", ("dec2", "enc1"))):
        expected = sum(widths[p].filters for p in parts)
        assert pruned.get_layer(concat).output.shape[-1] == expected
        reader = "dec2" if concat == "skip2" else "dec1"
        assert pruned.get_layer(reader).get_weights()[0].shape[2] == expected
    assert pruned.get_layer("mask_logits").filters == 4  # the model output stays whole
    x = sample_inputs((16, 16, 3), count=3)
    keras_out = np.asarray(pruned(x, training=False))
    from channels.toy_models import run_tflite

    tflite_out = run_tflite(to_tflite(pruned), x)
    assert tflite_out.shape == keras_out.shape == (3, 16, 16, 4)
    assert float(np.max(np.abs(tflite_out - keras_out))) <= 1e-4


def test_fpn_adds_tie_the_laterals_and_every_head_output_stays_whole():
    model = build_fpn_detector(seed=1)
    # the top-down Adds make lat3/lat4/lat5 one group: zero the same channels in all three
    zero_channels(model, {"lat3": [3, 11], "lat4": [3, 11], "lat5": [3, 11], "c4": [0]})
    pruned, report = prune_channels(model, threshold=1e-9, granularity=1, min_filters=1)
    after = {name: counts["after"] for name, counts in report.layers.items()}
    assert after["lat3"] == after["lat4"] == after["lat5"] == 14
    assert after["c4"] == 15
    groups = {g.name: g for g in report.groups}
    (lateral,) = [g for g in groups.values() if "lat3" in g.layers]
    assert {"lat3", "lat4", "lat5"} <= set(lateral.layers)
    for level in ("p3", "p4", "p5"):
        assert pruned.get_layer(f"{level}_boxes").filters == 6
        assert pruned.get_layer(f"{level}_head").get_weights()[0].shape[2] == 14
    assert sorted(pruned.output.keys()) == sorted(model.output.keys())
    assert_same_outputs(model, pruned, sample_inputs((32, 32, 3), count=3))


def test_fpn_ratio_prune_converts_and_every_output_matches_tflite():
    model = build_fpn_detector()
    pruned, report = prune_channels(model, ratio=0.3, granularity=2, min_filters=2)
    assert report.params_after < report.params_before
    assert isinstance(pruned.output, dict) and set(pruned.output) == set(model.output)
    from ai_edge_litert.interpreter import Interpreter

    content = to_tflite(pruned)
    interpreter = Interpreter(model_content=content, num_threads=1)
    interpreter.allocate_tensors()
    x = sample_inputs((32, 32, 3), count=1)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    got = sorted(
        (tuple(d["shape"][1:]), interpreter.get_tensor(d["index"]))
        for d in interpreter.get_output_details()
    )
    want = sorted((v.shape[1:], v) for v in flat_outputs(pruned, x))
    assert [shape for shape, _ in got] == [shape for shape, _ in want]
    for (_, a), (_, b) in zip(got, want, strict=True):
        assert float(np.max(np.abs(a - b))) <= 1e-4


def test_two_heads_keep_their_outputs_and_share_the_trunk():
    model = build_two_heads(seed=2)
    zero_channels(model, {"trunk2": [1, 2, 3], "box_hidden": [0, 19]})
    pruned, report = prune_channels(model, threshold=1e-9, granularity=1, min_filters=1)
    after = {name: counts["after"] for name, counts in report.layers.items()}
    assert after["trunk2"] == 13 and after["box_hidden"] == 18
    assert after["classes"] == 5 and after["boxes"] == 4
    # both heads read the pooled trunk: each loses the same input rows
    assert pruned.get_layer("classes").get_weights()[0].shape == (13, 5)
    assert pruned.get_layer("box_hidden").get_weights()[0].shape == (13, 18)
    assert [t.name for t in pruned.outputs] != [] and len(pruned.outputs) == 2
    assert_same_outputs(model, pruned, sample_inputs((16, 16, 3), count=4))


@pytest.mark.parametrize("builder", [build_unet, build_fpn_detector, build_two_heads])
def test_ratio_zero_is_the_same_function(builder):
    model = builder()
    pruned, report = prune_channels(model, ratio=0.0)
    assert report.params_after == report.params_before
    assert_same_outputs(model, pruned, sample_inputs(tuple(model.inputs[0].shape[1:]), count=2))


def build_shared_head_detector(seed: int = 0) -> Any:
    """RetinaNet-style: one head (two convs) applied to both FPN levels, Resizing upsampling."""
    keras = _tf.keras()
    layers = keras.layers
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((32, 32, 3), name="image")
    c3 = layers.Conv2D(12, 3, strides=2, padding="same", activation="relu", name="c3")(inputs)
    c4 = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="c4")(c3)
    p4 = layers.Conv2D(16, 1, name="lat4")(c4)
    upsampled = layers.Resizing(16, 16, interpolation="nearest", name="resize4")(p4)
    p3 = layers.Add(name="td3")([upsampled, layers.Conv2D(16, 1, name="lat3")(c3)])
    hidden = layers.Conv2D(16, 3, padding="same", activation="relu", name="shared_hidden")
    boxes = layers.Conv2D(6, 1, name="shared_boxes")
    return keras.Model(inputs, [boxes(hidden(p3)), boxes(hidden(p4))], name="shared_head")


def test_a_head_shared_by_fpn_levels_ties_its_calls_instead_of_fixing_the_pyramid():
    model = build_shared_head_detector(seed=4)
    zero_channels(model, {"lat3": [2, 8], "lat4": [2, 8], "shared_hidden": [0, 5, 6]})
    pruned, report = prune_channels(model, threshold=1e-9, granularity=1, min_filters=1)
    assert report.skipped_layers == []  # Resizing is known: channel c in, channel c out
    after = {name: counts["after"] for name, counts in report.layers.items()}
    assert after["lat3"] == after["lat4"] == 14
    assert after["shared_hidden"] == 13 and after["shared_boxes"] == 6
    assert pruned.get_layer("shared_hidden").get_weights()[0].shape == (3, 3, 14, 13)
    assert_same_outputs(model, pruned, sample_inputs((32, 32, 3), count=3))


def test_a_layer_called_on_its_own_output_keeps_its_channels():
    keras = _tf.keras()
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(8, 1, name="stem")(inputs)
    shared = keras.layers.Conv2D(8, 1, name="twice")
    outputs = keras.layers.Conv2D(2, 1, name="out")(shared(shared(x)))
    model = keras.Model(inputs, outputs)
    _, report = prune_channels(model, ratio=0.5, granularity=1, min_filters=1)
    reasons = {g.name: g.reason for g in report.groups}
    assert "twice is called 2 times (shared weights) on its own output" in str(reasons["twice"])
    assert report.layers["twice"]["after"] == 8


def test_ops_concatenate_and_ops_resize_skips_are_pruned():
    keras = _tf.keras()
    layers, ops = keras.layers, keras.ops
    keras.utils.set_random_seed(5)
    inputs = keras.Input((16, 16, 3), name="image")
    e1 = layers.Conv2D(8, 3, padding="same", activation="relu", name="enc1")(inputs)
    e2 = layers.Conv2D(12, 3, strides=2, padding="same", activation="relu", name="enc2")(e1)
    up = ops.image.resize(e2, (16, 16), interpolation="nearest")
    d1 = layers.Conv2D(8, 3, padding="same", activation="relu", name="dec1")(
        ops.concatenate([up, e1], axis=-1)
    )
    model = keras.Model(inputs, layers.Conv2D(3, 1, name="mask_logits")(d1), name="ops_unet")
    zero_channels(model, {"enc1": [1], "enc2": [0, 4]})
    pruned, report = prune_channels(model, threshold=1e-9, granularity=1, min_filters=1)
    assert report.skipped_layers == []
    assert pruned.get_layer("dec1").get_weights()[0].shape[2] == 10 + 7
    assert_same_outputs(model, pruned, sample_inputs((16, 16, 3), count=3))


def test_an_unknown_layer_on_one_skip_is_left_alone_and_named_the_rest_is_pruned():
    keras = _tf.keras()

    @keras.saving.register_keras_serializable(package="edgeprune_tests")
    class SkipGate(keras.layers.Layer):
        """A user layer with a per-channel weight: the tool cannot know how to slice it."""

        def build(self, input_shape):
            self.gate = self.add_weight(shape=(input_shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.gate

    model = build_unet(seed=6)
    e1 = model.get_layer("enc1").output
    gated = SkipGate(name="skip_gate")(e1)
    # rebuild the last level so skip1 reads the gated encoder features
    up1 = model.get_layer("up1").output
    d1 = keras.layers.Conv2D(12, 3, padding="same", activation="relu", name="dec1b")(
        keras.layers.Concatenate(name="skip1b")([up1, gated])
    )
    gated_model = keras.Model(model.inputs[0], keras.layers.Conv2D(4, 1, name="masks")(d1))
    pruned, report = prune_channels(gated_model, ratio=0.5, granularity=2, min_filters=2)
    assert report.unknown_layers == ["skip_gate"]
    assert report.layers["enc1"]["after"] == 12  # it feeds the unknown layer
    assert report.layers["enc2"]["after"] < 16 and report.layers["dec2"]["after"] < 16
    expected = pruned.get_layer("dec2").filters + 12
    assert pruned.get_layer("dec1b").get_weights()[0].shape[2] == expected
    x = sample_inputs((16, 16, 3), count=2)
    assert np.asarray(pruned(x)).shape == (2, 16, 16, 4)


def test_ssd_style_heads_reshaped_and_concatenated_across_levels():
    """Per-level box convs reshaped to (anchors, 4) and concatenated on the anchor axis."""
    keras = _tf.keras()
    layers = keras.layers
    keras.utils.set_random_seed(8)
    inputs = keras.Input((16, 16, 3), name="image")
    f1 = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="f1")(inputs)
    f2 = layers.Conv2D(24, 3, strides=2, padding="same", activation="relu", name="f2")(f1)
    boxes, scores = [], []
    for name, feature in (("l1", f1), ("l2", f2)):
        boxes.append(
            layers.Reshape((-1, 4), name=f"{name}_boxes_r")(
                layers.Conv2D(2 * 4, 3, padding="same", name=f"{name}_boxes")(feature)
            )
        )
        scores.append(
            layers.Reshape((-1, 3), name=f"{name}_scores_r")(
                layers.Conv2D(2 * 3, 3, padding="same", name=f"{name}_scores")(feature)
            )
        )
    model = keras.Model(
        inputs,
        {
            "boxes": layers.Concatenate(axis=1, name="boxes")(boxes),
            "scores": layers.Concatenate(axis=1, name="scores")(scores),
        },
    )
    pruned, report = prune_channels(model, ratio=0.5, granularity=2, min_filters=2)
    assert report.unknown_layers == []
    assert report.layers["f1"]["after"] == 8 and report.layers["f2"]["after"] == 12
    for head in ("l1_boxes", "l2_boxes", "l1_scores", "l2_scores"):
        assert report.layers[head]["after"] == report.layers[head]["before"]
    x = sample_inputs((16, 16, 3), count=2)
    want = {k: v.shape for k, v in model(x).items()}
    assert (
        {k: v.shape for k, v in pruned(x).items()}
        == want
        == {"boxes": (2, 160, 4), "scores": (2, 160, 3)}
    )


def test_macs_of_a_shared_head_count_every_call():
    from edgeprune.keras_stats import model_stats

    model = build_shared_head_detector()
    same, _ = prune_channels(model, ratio=0.0)
    stats = {layer.name: layer.macs for layer in model_stats(model).layers}
    # 3x3x16x16 kernel on the 16x16 level and on the 8x8 level
    assert stats["shared_hidden"] == 3 * 3 * 16 * 16 * (16 * 16 + 8 * 8)
    assert stats["shared_boxes"] == 16 * 6 * (16 * 16 + 8 * 8)
    # the rebuilt model calls the head in another order: the count must not depend on it
    assert model_stats(same).macs == model_stats(model).macs
