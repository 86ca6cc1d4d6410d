"""Pruning real Keras 3 models: layer selection, one-shot acceptance, the training callback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgeprune.errors import UserError
from edgeprune.prune import (
    ConstantSparsity,
    MaskConstraint,
    PrunePolicy,
    prunable_kernels,
    prune_gradually,
    prune_model,
    register_policy,
)
from edgeprune.prune.training import (
    BINARY_PROBABILITIES,
    LOGITS,
    PROBABILITIES,
    output_kind,
)


@pytest.fixture(scope="module")
def keras():
    from edgeprune import _tf

    return _tf.keras()


@pytest.fixture(scope="module")
def mobilenet(keras):
    model = keras.applications.MobileNetV2(weights=None)
    return model, model.get_weights()


def _zeros(variable) -> float:
    values = np.asarray(variable.numpy())
    return 1.0 - np.count_nonzero(values) / values.size


@pytest.mark.parametrize("scope", ["local", "global"])
@pytest.mark.parametrize("sparsity", [0.5, 0.7, 0.9])
def test_mobilenetv2_one_shot_reaches_the_target(mobilenet, scope, sparsity):
    from edgeprune.keras_stats import model_stats

    model, weights = mobilenet
    model.set_weights(weights)
    report = prune_model(model, sparsity, scope=scope)
    # measured independently of the report: every kernel of a prunable layer type
    assert model_stats(model).kernel_sparsity == pytest.approx(sparsity, abs=0.01)
    assert report.overall == pytest.approx(sparsity, abs=0.01)
    pruned = {k.layer for k in report.kernels}
    assert len(pruned) == 49 and {s.layer for s in report.skipped} == {
        "Conv1",
        "expanded_conv_depthwise",
        "expanded_conv_project",
        "block_1_depthwise",
    }
    per_layer = {t.label: _zeros(t.variable) for t in prunable_kernels(model) if t.label in pruned}
    if scope == "local":
        assert all(abs(v - sparsity) <= 0.01 for v in per_layer.values()), per_layer
    else:  # one threshold: layers differ, the biggest dense layer of small weights loses most
        assert max(per_layer.values()) - min(per_layer.values()) > 0.1


def test_mobilenetv2_patterns_are_exact_in_every_group(mobilenet):
    model, weights = mobilenet
    for text, check in (("2:4", _check_2_4), ("block:4x1", _check_block_4x1)):
        model.set_weights(weights)
        report = prune_model(model, None if text == "2:4" else 0.7, pattern=text)
        assert report.pattern_ok
        assert report.overall == pytest.approx(0.5 if text == "2:4" else 0.7, abs=0.005)
        names = {k.layer for k in report.kernels}
        assert not any("depthwise" in n for n in names)
        for target in prunable_kernels(model):
            if target.label in names:
                check(np.asarray(target.variable.numpy()))


def _check_2_4(kernel: np.ndarray) -> None:
    """Conv (kh, kw, in, out) or Dense (in, out): <= 2 non-zeros per 4 input channels."""
    cin, cout = kernel.shape[-2:]
    groups = kernel.reshape(-1, cin // 4, 4, cout)
    assert np.count_nonzero(groups, axis=2).max() <= 2


def _check_block_4x1(kernel: np.ndarray) -> None:
    """Blocks of 4 consecutive output channels at one input channel are all zero or all kept."""
    cin, cout = kernel.shape[-2:]
    blocks = np.count_nonzero(kernel.reshape(-1, cin, cout // 4, 4), axis=-1)
    assert set(np.unique(blocks)) <= {0, 4}


def _nested_model(keras):
    layers = keras.layers
    inputs = keras.Input((8, 8, 4))
    x = layers.Conv2D(32, 3, padding="same", name="conv")(inputs)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = layers.SeparableConv2D(64, 3, depth_multiplier=4, name="sep")(x)
    x = layers.GlobalAveragePooling2D()(x)
    base = keras.Model(inputs, x, name="base")
    head = keras.Sequential([keras.Input((64,)), layers.Dense(32, name="fc")], name="head")
    return keras.Sequential([keras.Input((8, 8, 4)), base, head], name="outer")


def test_nested_models_are_walked_and_biases_bn_never_pruned(keras):
    model = _nested_model(keras)
    labels = [t.label for t in prunable_kernels(model)]
    assert labels == [
        "base/conv",
        "base/dw",
        "base/sep:depthwise_kernel",
        "base/sep:pointwise_kernel",
        "head/fc",
    ]
    before = {w.path: np.array(w.numpy()) for w in model.weights}
    report = prune_model(model, 0.6, min_params=0)
    assert {k.layer for k in report.kernels} == set(labels)
    for weight in model.weights:
        changed = not np.array_equal(before[weight.path], weight.numpy())
        is_kernel = weight.path.endswith(("kernel", "depthwise_kernel", "pointwise_kernel"))
        assert changed == is_kernel, weight.path
    for target in prunable_kernels(model):
        assert _zeros(target.variable) == pytest.approx(0.6, abs=0.01)


def test_include_types_picks_layers_by_keras_type(keras):
    model = _nested_model(keras)
    weights = model.get_weights()
    report = prune_model(model, 0.5, include_types=["conv2d", "Dense"], min_params=0)
    assert [k.layer for k in report.kernels] == ["base/conv", "head/fc"]
    model.set_weights(weights)
    report = prune_model(
        model, 0.5, include_types=["SeparableConv2D"], include=["*pointwise*"], min_params=0
    )
    assert [k.layer for k in report.kernels] == ["base/sep:pointwise_kernel"]
    with pytest.raises(UserError, match="^include_types 'Conv3D' is not a prunable layer type"):
        prune_model(model, 0.5, include_types=["Conv3D"])
    model2 = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="fc")])
    with pytest.raises(
        UserError, match="^include_types Conv2D: no prunable layer of that type"
    ) as caught:
        prune_model(model2, 0.5, include_types=["Conv2D"], min_params=0)
    assert "prunable types in this model: Dense" in str(caught.value)
    with pytest.raises(UserError, match="empty name"):
        prune_model(model2, 0.5, include_types=[" "], min_params=0)


def test_include_exclude_and_min_params(keras):
    model = _nested_model(keras)
    weights = model.get_weights()
    report = prune_model(model, 0.5, include=["base/*"], exclude=["sep"], min_params=0)
    assert [k.layer for k in report.kernels] == ["base/conv", "base/dw"]
    model.set_weights(weights)
    report = prune_model(model, 0.5)  # default min_params 1024: dw has 288 weights, sep's 1152
    skipped = {s.layer: s.reason for s in report.skipped}
    assert list(skipped) == ["base/dw"] and "288 weights < min-params 1024" in skipped["base/dw"]
    assert "base/sep:depthwise_kernel" in {k.layer for k in report.kernels}
    with pytest.raises(
        UserError, match=r"^include 'nope\*' matches no prunable layer.*base/conv"
    ) as caught:
        prune_model(model, 0.5, include=["nope*"])
    assert caught.value.in_flags().startswith("--include 'nope*' matches no prunable layer")
    with pytest.raises(UserError, match="^exclude 'bn' matches no prunable layer") as caught:
        prune_model(model, 0.5, exclude=["bn"])
    assert caught.value.in_flags().startswith("--exclude 'bn' matches no prunable layer")
    with pytest.raises(UserError, match="no layer is left to prune"):
        prune_model(model, 0.5, min_params=10**9)
    with pytest.raises(UserError, match="^min_params: ") as caught:
        prune_model(model, 0.5, min_params=-1)
    assert caught.value.in_flags().startswith("--min-params: ")


def test_every_check_runs_before_any_weight_changes(keras):
    layers = keras.layers
    inputs = keras.Input((16,))
    x = layers.Dense(64, name="fits")(inputs)  # in=16: 2:4 fits
    outputs = layers.Dense(8, name="odd")(layers.Dense(6, name="six")(x))  # in=6: it does not
    model = keras.Model(inputs, outputs)
    before = [np.array(w) for w in model.get_weights()]
    with pytest.raises(UserError, match=r"pattern 2:4 does not fit layer 'odd'.*6 input channels"):
        prune_model(model, None, pattern="2:4", min_params=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


def test_model_without_prunable_layers_is_refused(keras):
    layers = keras.layers
    model = keras.Sequential(
        [keras.Input((10,), dtype="int32"), layers.Embedding(1000, 16), layers.BatchNormalization()]
    )
    with pytest.raises(UserError, match="no prunable layer"):
        prune_model(model, 0.5)
    unbuilt = keras.Sequential([layers.Dense(4)])
    with pytest.raises(UserError, match="never built"):
        prune_model(unbuilt, 0.5)


def test_a_registered_policy_decides_and_checks_first(keras):
    class DenseOnly(PrunePolicy):
        name = "dense-only-test"

        def check_model(self, model):
            if not any(t.class_name == "Dense" for t in prunable_kernels(model)):
                raise UserError("no Dense layer")

        def candidates(self, model):
            return [t for t in prunable_kernels(model) if t.class_name == "Dense"]

    register_policy(DenseOnly.name, DenseOnly)
    model = _nested_model(keras)
    report = prune_model(model, 0.5, policy=DenseOnly.name, min_params=0)
    assert [k.layer for k in report.kernels] == ["head/fc"]
    register_policy("lazy-test", "edgeprune.prune.policy:AllPrunableKernels")
    assert len(prune_model(model, 0.5, policy="lazy-test", min_params=0).kernels) == 5
    conv_only = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(4, 3)])
    with pytest.raises(UserError, match="no Dense layer"):
        prune_model(conv_only, 0.5, policy=DenseOnly.name, min_params=0)


@pytest.mark.parametrize(
    ("activation", "units", "expected"),
    [("softmax", 10, PROBABILITIES), (None, 10, LOGITS), ("sigmoid", 1, BINARY_PROBABILITIES)],
)
def test_output_kind_follows_the_final_activation(keras, activation, units, expected):
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(units, activation=activation)])
    nested = keras.Sequential([keras.Input((4,)), inner])
    assert output_kind(inner) == expected
    assert output_kind(nested) == expected


def test_output_kind_refuses_what_it_cannot_train(keras):
    relu = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu")])
    with pytest.raises(UserError, match="activation 'relu'"):
        output_kind(relu)
    softmax_layer = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3), keras.layers.Softmax()]
    )
    assert output_kind(softmax_layer) == PROBABILITIES


def _small_cnn(keras):
    layers = keras.layers
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 1))
    x = layers.Conv2D(16, 3, activation="relu", name="conv")(inputs)
    x = layers.Flatten()(x)
    outputs = layers.Dense(10, name="dense", kernel_constraint=keras.constraints.MaxNorm(3.0))(x)
    return keras.Model(inputs, outputs)


def test_callback_keeps_pruned_weights_exactly_zero_through_fit(keras, digits, tmp_path):
    from edgeprune.prune import PruningCallback

    model = _small_cnn(keras)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x, y = digits.x_train[:256], digits.y_train[:256]
    pruning = PruningCallback(ConstantSparsity(0.6, 0, end_step=3, frequency=1), min_params=0)
    originals = {"conv": None, "dense": model.get_layer("dense").kernel.constraint}

    class Recorder(keras.callbacks.Callback):
        """Largest |w| at a masked position after every optimizer step."""

        def __init__(self):
            super().__init__()
            self.leaks: list[float] = []
            self.constraints: set[str] = set()

        def on_train_batch_end(self, batch, logs=None):
            for target, mask in zip(pruning.plan.targets, pruning._masks, strict=True):
                values = np.asarray(target.variable.numpy())
                self.leaks.append(float(np.abs(values[~mask]).max(initial=0.0)))
                self.constraints.add(type(target.variable.constraint).__name__)

    recorder = Recorder()
    start = [np.array(t) for t in model.get_weights()]
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[pruning, recorder])
    assert len(recorder.leaks) == 2 * 8 * 2 and max(recorder.leaks) == 0.0
    assert recorder.constraints == {"MaskConstraint"}
    assert pruning.report.overall == pytest.approx(0.6, abs=0.01)
    for target in pruning.plan.targets:
        assert target.variable.constraint is originals[target.layer_path]
    assert not np.array_equal(start[-2], model.get_weights()[-2])  # it did train

    saved = tmp_path / "pruned.keras"
    model.save(saved)
    # a second fit with the same callback reuses its masked train step and stays exact
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[pruning, recorder])
    assert len(recorder.leaks) == 3 * 8 * 2 and max(recorder.leaks) == 0.0
    # negative control: plain training afterwards moves the pruned weights again
    masks = [m.copy() for m in pruning._masks]
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    regrown = [
        np.count_nonzero(np.asarray(t.variable.numpy())[~m])
        for t, m in zip(pruning.plan.targets, masks, strict=True)
    ]
    assert min(regrown) > 0
    assert not any(isinstance(v.constraint, MaskConstraint) for v in model.variables)
    _check_loads_without_edgeprune(saved, {"conv": 0.6, "dense": 0.6})


def _check_loads_without_edgeprune(path: Path, sparsity: dict[str, float]) -> None:
    code = textwrap.dedent(
        f"""
        import os, sys
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import keras, numpy as np
        model = keras.models.load_model({str(path)!r})
        assert not any(m.startswith("edgeprune") for m in sys.modules), "edgeprune was imported"
        for name, target in {sparsity!r}.items():
            kernel = model.get_layer(name).kernel.numpy()
            zeros = 1 - np.count_nonzero(kernel) / kernel.size
            assert abs(zeros - target) < 0.01, (name, zeros)
        constraint = model.get_layer("dense").kernel_constraint
        assert type(constraint).__name__ == "MaxNorm", constraint
        print("ok")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=300
    )
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]


def test_callback_ramps_to_an_exact_2_4_pattern(keras, digits):
    from edgeprune.prune import PolynomialDecay, PruningCallback

    model = _small_cnn(keras)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True))
    pruning = PruningCallback(
        PolynomialDecay(0.0, 0.5, 0, end_step=6, frequency=2), pattern="2:4", include="dense"
    )
    seen: list[float] = []

    class Ramp(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(_zeros(model.get_layer("dense").kernel))

    x, y = digits.x_train[:256], digits.y_train[:256]
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[pruning, Ramp()])
    assert seen[0] < seen[3] < seen[6] == pytest.approx(0.5) and seen[-1] == pytest.approx(0.5)
    assert pruning.report.pattern_ok and pruning.report.kernels[0].layer == "dense"
    _check_2_4(np.asarray(model.get_layer("dense").kernel.numpy()))


def test_prune_gradually_checks_before_training(keras, digits):
    model = _small_cnn(keras)
    before = [np.array(w) for w in model.get_weights()]
    steps = 4 * int(np.ceil(len(digits.x_train) / 32))
    with pytest.raises(
        UserError, match=f"end_step {steps} is not below the {steps} training steps"
    ):
        prune_gradually(model, digits, 0.5, epochs=4, end_step=steps, min_params=0)
    with pytest.raises(UserError, match="begin_step"):
        prune_gradually(model, digits, 0.5, epochs=1, begin_step=10**6, min_params=0)
    with pytest.raises(UserError, match=r"epochs: .*\(got 0\)"):
        prune_gradually(model, digits, 0.5, epochs=0)
    with pytest.raises(UserError, match="learning_rate"):
        prune_gradually(model, digits, 0.5, learning_rate=-1.0)
    three = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    with pytest.raises(UserError, match="10 classes but model outputs 3"):
        prune_gradually(three, digits, 0.5, min_params=0)
    with pytest.raises(UserError, match="10 classes"):
        prune_gradually(three, digits, 0.5, min_params=0, task="classification")
    with pytest.raises(UserError, match=r"shape \(8, 8, 1\) but model expects \(4, 4, 1\)"):
        prune_gradually(
            keras.Sequential(
                [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
            ),
            digits,
            0.5,
        )
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
