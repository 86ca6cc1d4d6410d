"""`edgeprune channels` end to end on the trained digits demo model: files, manifest, JSON, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeprune.manifest import read_manifest


def test_channels_json_writes_a_smaller_model_and_its_manifest(run_cli, demo_model_path, tmp_path):
    out = tmp_path / "pruned.keras"
    result = run_cli(
        "channels", demo_model_path, "-o", out, "--ratio", "0.5", "--exclude", "block3_pw", "--json"
    )
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["output"] == str(out)
    layers = report["layers"]
    assert layers["stem_conv"] == {"before": 32, "after": 16}
    assert layers["block2_pw"] == {"before": 128, "after": 64}
    assert layers["block3_pw"] == {"before": 128, "after": 128}  # excluded
    assert report["params"]["after"] < report["params"]["before"]
    assert report["macs"]["after"] < report["macs"]["before"]
    assert any("accuracy needs recovery" in note for note in report["notes"])

    manifest = read_manifest(out)
    assert manifest is not None and manifest.step == "channels" and manifest.format == "keras"
    assert manifest.options["ratio"] == 0.5 and manifest.options["exclude"] == ["block3_pw"]
    assert manifest.extra["channels"]["layers"]["stem_conv"]["after"] == 16
    assert manifest.extra["channels"]["macs"] == report["macs"]
    assert manifest.source is not None and manifest.source["path"] == str(demo_model_path)

    # a plain Keras model: loads in a fresh interpreter that never imports edgeprune
    code = (
        "import os, sys; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'\n"
        "import keras, numpy as np\n"
        f"m = keras.models.load_model({str(out)!r})\n"
        "assert 'edgeprune' not in sys.modules\n"
        "print(m.count_params(), m.predict(np.zeros((2, 8, 8, 1), 'float32'), verbose=0).shape)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-3:] == [str(report["params"]["after"]), "(2,", "10)"]


def test_channels_fine_tunes_with_data_and_prints_a_summary(run_cli, demo_model_path, tmp_path):
    out = tmp_path / "tuned.keras"
    result = run_cli(
        "channels",
        demo_model_path,
        "-o",
        out,
        "--ratio",
        "0.5",
        "--data",
        "digits",
        "--epochs",
        "3",
    )
    assert result.code == 0, result.err
    assert "MACs 626,944 → 182,400" in result.out
    assert "wrote" in result.out
    accuracy = read_manifest(out).accuracy
    assert accuracy["dataset"] == "digits" and accuracy["epochs"] == 3
    assert accuracy["top1_before_pruning"] > 0.9
    assert accuracy["top1"] > accuracy["top1_after_pruning"]
    assert accuracy["top1"] > 0.85
    inspected = run_cli("inspect", out)
    assert inspected.code == 0, inspected.err
    assert "channels: MACs 626,944 → 182,400 (0.29×)" in inspected.out


def _bad_npz(tmp_path: Path) -> Path:
    path = tmp_path / "wrong_shape.npz"
    np.savez(path, x=np.zeros((20, 16, 16, 3), np.float32), y=np.arange(20) % 10)
    return path


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ratio", "1.5"], "--ratio 1.5 is outside [0, 0.95]"),
        (["--ratio", "0.5", "--threshold", "0.2"], "give --ratio or --threshold, not both"),
        (["--exclude", "nothing_here"], "--exclude 'nothing_here' matches no layer"),
        (["--criterion", "l0"], "--criterion 'l0' is not one of"),
        (["--epochs", "2"], "--epochs needs --data"),
        (["--data", "digits", "--epochs", "0"], "--epochs must be >= 1"),
        (["--data", "no_such_dataset"], "dataset 'no_such_dataset' does not exist"),
        (["--data", "BAD_NPZ"], "dataset 'wrong_shape' has samples of shape (16, 16, 3) but"),
    ],
)
def test_channels_errors_are_one_line_and_write_nothing(
    run_cli, demo_model_path, tmp_path, extra, message
):
    out = tmp_path / "out.keras"
    args = [str(_bad_npz(tmp_path)) if a == "BAD_NPZ" else a for a in extra]
    result = run_cli("channels", demo_model_path, "-o", out, *args)
    assert result.code == 2, result.err
    assert f"error: {message}" in result.err
    assert "Traceback" not in result.err
    assert list(tmp_path.glob("out.keras*")) == [] and list(tmp_path.glob(".out.keras*")) == []


def test_channels_file_errors(run_cli, demo_model_path, tmp_path):
    missing = run_cli("channels", tmp_path / "nope.keras", "-o", tmp_path / "o.keras")
    assert missing.code == 2 and "does not exist" in missing.err
    wrong_suffix = run_cli("channels", demo_model_path, "-o", tmp_path / "o.tflite")
    assert wrong_suffix.code == 2 and "must end with .keras or .h5" in wrong_suffix.err
    no_dir = run_cli("channels", demo_model_path, "-o", tmp_path / "missing" / "o.keras")
    assert no_dir.code == 2 and "does not exist; create it first" in no_dir.err
    copy = tmp_path / "model.keras"
    copy.write_bytes(Path(demo_model_path).read_bytes())
    same = run_cli("channels", copy, "-o", copy)
    assert same.code == 2 and "is the input model" in same.err
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a model at all")
    bad = run_cli("channels", junk, "-o", tmp_path / "o.keras")
    assert bad.code == 2 and "not a model" in bad.err
    assert not (tmp_path / "o.keras").exists()
