"""`edgeprune prune` end to end: bad input, one-shot with manifest, gradual acceptance."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from device_agents.integrity import sha256_file


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> Path:
    """Files that look like inputs but are wrong: random bytes, a dataset of the wrong shape,
    a model with nothing prunable."""
    from edgeprune import _tf

    root = tmp_path_factory.mktemp("bad")
    (root / "random.keras").write_bytes(np.random.default_rng(0).bytes(512))
    np.savez(root / "small.npz", x=np.zeros((20, 5, 5, 1), np.float32), y=np.arange(20) % 10)
    keras = _tf.keras()
    model = keras.Sequential(
        [
            keras.Input((10,), dtype="int32"),
            keras.layers.Embedding(1000, 16),
            keras.layers.BatchNormalization(),
        ]
    )
    model.save(root / "embedding.keras")
    return root


BAD_INPUT_CASES = {
    "missing model": (["{tmp}/absent.keras", "--sparsity", "0.5"], "does not exist"),
    "random bytes": (["{bad}/random.keras", "--sparsity", "0.5"], "not a model"),
    "sparsity too high": (["{model}", "--sparsity", "1.5"], r"outside \[0, 0.99\]"),
    "sparsity negative": (["{model}", "--sparsity", "-0.1"], r"outside \[0, 0.99\]"),
    "no sparsity": (["{model}"], "no sparsity given"),
    "pattern 3:2": (["{model}", "--sparsity", "0.5", "--pattern", "3:2"], "1 <= N < M"),
    "pattern 0:4": (["{model}", "--pattern", "0:4"], "1 <= N < M"),
    "pattern block:0x4": (["{model}", "--sparsity", "0.5", "--pattern", "block:0x4"], ">= 1"),
    "pattern foo": (["{model}", "--sparsity", "0.5", "--pattern", "foo"], "not understood"),
    "pattern contradicts sparsity": (
        ["{model}", "--sparsity", "0.7", "--pattern", "2:4"],
        "fixes sparsity at 0.5",
    ),
    "pattern does not fit a layer": (
        ["{model}", "--pattern", "2:4", "--min-params", "0"],
        "does not fit layer 'stem_conv'.*3 input channels",
    ),
    "epochs without data": (["{model}", "--sparsity", "0.5", "--epochs", "3"], "needs --data"),
    "end before begin": (
        [
            "{model}",
            "--sparsity",
            "0.5",
            "--data",
            "digits",
            "--begin-step",
            "10",
            "--end-step",
            "5",
        ],
        "--end-step 5 must be greater than --begin-step 10",
    ),
    "end past training": (
        ["{model}", "--sparsity", "0.5", "--data", "digits", "--epochs", "1", "--end-step", "999"],
        "end-step 999 is not below the 45 training steps",
    ),
    "unknown schedule": (
        ["{model}", "--sparsity", "0.5", "--data", "digits", "--schedule", "cosine"],
        "--schedule 'cosine' is not one of",
    ),
    "power with constant": (
        [
            "{model}",
            "--sparsity",
            "0.5",
            "--data",
            "digits",
            "--schedule",
            "constant",
            "--power",
            "2",
        ],
        "--power shape the polynomial schedule only",
    ),
    "dataset does not fit": (
        ["{model}", "--sparsity", "0.5", "--data", "{bad}/small.npz"],
        r"shape \(5, 5, 1\) but model expects \(8, 8, 1\)",
    ),
    "output dir missing": (
        ["{model}", "--sparsity", "0.5", "-o", "{tmp}/no/such/dir/out.keras"],
        "directory .* does not exist",
    ),
    "output suffix": (["{model}", "--sparsity", "0.5", "-o", "{tmp}/out.tflite"], "must end with"),
    "include matches nothing": (
        ["{model}", "--sparsity", "0.5", "--include", "conv*"],
        "--include 'conv\\*' matches no prunable layer; prunable layers: stem_conv, block1_dw",
    ),
    "unknown layer type": (
        ["{model}", "--sparsity", "0.5", "--include-type", "Conv3D"],
        "^error: --include-type 'Conv3D' is not a prunable layer type; choose from Conv2D",
    ),
    "cap below target": (
        ["{model}", "--sparsity", "0.9", "--scope", "balanced", "--max-layer-sparsity", "0.8"],
        "below the target sparsity",
    ),
    "cap without balanced": (
        ["{model}", "--sparsity", "0.5", "--max-layer-sparsity", "0.8"],
        "applies to --scope balanced only",
    ),
    "unknown scope": (["{model}", "--sparsity", "0.5", "--scope", "all"], "scope 'all'"),
    "unknown policy": (["{model}", "--sparsity", "0.5", "--policy", "nope"], "policy 'nope'"),
    "nothing prunable": (["{bad}/embedding.keras", "--sparsity", "0.5"], "no prunable layer"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT_CASES))
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    case, run_cli, demo_model_path, bad_inputs, tmp_path
):
    args, message = BAD_INPUT_CASES[case]
    values = {"tmp": tmp_path, "bad": bad_inputs, "model": demo_model_path}
    argv = [a.format(**values) for a in args]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "out.keras")]
    outcome = run_cli("prune", *argv)
    assert outcome.code == 2, outcome.err
    lines = outcome.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), outcome.err
    assert "Traceback" not in outcome.err
    assert re.search(message, lines[0]), lines[0]
    assert list(tmp_path.iterdir()) == []


def test_one_shot_writes_a_plain_model_and_its_manifest(run_cli, demo_model_path, tmp_path):
    from edgeprune.models import load_keras_model
    from edgeprune.prune import prunable_kernels

    out = tmp_path / "pruned.keras"
    outcome = run_cli(
        "prune", demo_model_path, "-o", out, "--sparsity", "0.7", "--scope", "global",
        "--exclude", "classifier", "--json",
    )  # fmt: skip
    assert outcome.code == 0, outcome.err
    result = json.loads(outcome.out)
    assert result["mode"] == "one-shot" and result["accuracy"] is None
    assert result["report"]["overall"] == pytest.approx(0.7, abs=0.001)
    manifest = json.loads((tmp_path / "pruned.keras.json").read_text())
    assert manifest["step"] == "prune" and manifest["sha256"] == sha256_file(out)
    assert manifest["source"]["sha256"] == sha256_file(demo_model_path)
    assert manifest["options"]["scope"] == "global"
    assert manifest["options"]["exclude"] == ["classifier"]
    assert manifest["options"]["sparsity"] == 0.7 and manifest["accuracy"] is None
    layers = manifest["sparsity"]["layers"]
    assert set(layers) == {"block1_pw", "block2_pw", "block3_dw", "block3_pw"}
    model = load_keras_model(out)
    measured = {
        t.label: 1 - np.count_nonzero(t.variable.numpy()) / t.size for t in prunable_kernels(model)
    }
    for name, value in layers.items():
        assert measured[name] == pytest.approx(value)
    assert measured["classifier"] < 0.01 and measured["stem_conv"] < 0.01
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pruned.keras", "pruned.keras.json"]


def test_table_output_names_every_pruned_layer(run_cli, demo_model_path, tmp_path):
    outcome = run_cli(
        "prune", demo_model_path, "-o", tmp_path / "p.keras", "--pattern", "block:4x1",
        "--sparsity", "0.6", "--exclude", "classifier",  # 10 outputs: not a multiple of 4
    )  # fmt: skip
    assert outcome.code == 0, outcome.err
    table = outcome.out.split("sparsity")[0]
    for name in ("block1_pw", "block2_pw", "block3_pw", "block:4x1"):
        assert name in table
    assert "block3_dw" not in table and "classifier" not in table  # depthwise: no channel axis
    assert "sparsity 60.0" in outcome.out and "wrote" in outcome.out


def test_gradual_pruning_to_80_percent_keeps_accuracy(run_cli, demo_model_path, tmp_path):
    out = tmp_path / "gradual.keras"
    outcome = run_cli(
        "prune", demo_model_path, "-o", out, "--sparsity", "0.8", "--data", "digits", "--json",
    )  # fmt: skip
    assert outcome.code == 0, outcome.err
    result = json.loads(outcome.out)
    accuracy = result["accuracy"]
    assert accuracy["dataset"] == "digits" and accuracy["split"] == "validation"
    assert accuracy["dense_top1"] > 0.9
    assert accuracy["dense_top1"] - accuracy["top1"] <= 0.010, accuracy
    assert result["training"]["schedule"]["end_step"] < result["training"]["steps"]
    for kernel in result["report"]["kernels"]:
        assert kernel["achieved"] == pytest.approx(0.8, abs=0.01), kernel
    manifest = json.loads((tmp_path / "gradual.keras.json").read_text())
    assert manifest["accuracy"]["top1"] == accuracy["top1"]
    assert manifest["accuracy"]["dense_top1"] == accuracy["dense_top1"]
    assert manifest["options"]["mode"] == "gradual" and manifest["options"]["epochs"] == 8
    assert manifest["options"]["schedule"]["kind"] == "polynomial"
    # a plain Keras model: loads and predicts as well in a process that never imports edgeprune
    code = textwrap.dedent(
        f"""
        import os, sys
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import keras, numpy as np
        model = keras.models.load_model({str(out)!r})
        assert not any(m.startswith("edgeprune") for m in sys.modules)
        kernel = model.get_layer("block3_pw").kernel.numpy()
        print(1 - np.count_nonzero(kernel) / kernel.size)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert float(proc.stdout.strip().splitlines()[-1]) == pytest.approx(0.8, abs=0.01)


def test_dense_kernels_are_named_with_why_then_counted(run_cli, demo_model_path, tmp_path):
    from edgeprune.models import load_keras_model
    from edgeprune.prune import prunable_kernels

    sizes = {t.label: t.size for t in prunable_kernels(load_keras_model(demo_model_path))}
    floor = sorted(sizes.values())[-1]  # only the largest kernel(s) stay prunable
    small = sorted(name for name, size in sizes.items() if size < floor)
    assert len(small) > 3
    outcome = run_cli(
        "prune", demo_model_path, "-o", tmp_path / "p.keras", "--sparsity", "0.5",
        "--min-params", floor,
    )  # fmt: skip
    assert outcome.code == 0, outcome.err
    (line,) = [x for x in outcome.out.splitlines() if "left dense" in x]
    assert f"{len(small)} kernel(s) left dense (" in line
    named = [
        name for name in small if f"{name}: {sizes[name]} weights < min-params {floor}" in line
    ]
    assert len(named) == 3 and line.endswith(f"and {len(small) - 3} more)")


def test_xnnpack_next_step_names_the_real_files(run_cli, demo_model_path, tmp_path):
    out = tmp_path / "sparse model.keras"
    outcome = run_cli(
        "prune", demo_model_path, "-o", out, "--sparsity", "0.8", "--policy", "xnnpack"
    )
    assert outcome.code == 0, outcome.err
    (line,) = [x for x in outcome.out.splitlines() if x.startswith("next:")]
    tflite = tmp_path / "sparse model.tflite"
    assert f"edgeprune convert '{out}' -o '{tflite}' --sparse-weights" in line
    assert f"edgeprune inspect '{tflite}'" in line and "OUT" not in line
