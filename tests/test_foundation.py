"""The package's own plumbing: CLI error handling, manifests, datasets, model files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeprune.data import check_fits, load_dataset
from edgeprune.errors import NotAModelError, UserError
from edgeprune.manifest import build_manifest, parse_manifest, read_manifest, write_manifest
from edgeprune.models import model_format


def test_version_and_help_run_without_tensorflow():
    code = (
        "import sys; from edgeprune.cli.app import run; rc = run(['--help']);"
        "assert 'tensorflow' not in sys.modules, 'help imported tensorflow'; sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "prune" in proc.stdout.lower() or "Usage" in proc.stdout


def test_unknown_command_is_a_usage_error(run_cli):
    outcome = run_cli("no-such-command")
    assert outcome.code == 2
    assert "Traceback" not in outcome.err


def test_digits_dataset_is_split_stratified_and_fixed(digits):
    assert digits.sample_shape == (8, 8, 1)
    assert digits.num_classes == 10
    assert len(digits.x_train) + len(digits.x_val) == 1797
    assert set(np.unique(digits.y_val)) == set(range(10))
    again = load_dataset("digits")
    assert np.array_equal(again.y_val, digits.y_val)
    assert digits.x_train.min() >= 0.0 and digits.x_train.max() <= 1.0


def test_npz_dataset_errors_name_the_problem(tmp_path: Path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((4, 3, 3, 1)), y=np.zeros(5))
    with pytest.raises(UserError, match="4 samples but y has 5"):
        load_dataset(bad)
    missing = tmp_path / "missing.npz"
    np.savez(missing, images=np.zeros((4, 3)))
    with pytest.raises(UserError, match="must hold arrays 'x' and 'y'"):
        load_dataset(missing)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a readable .npz"):
        load_dataset(junk)
    with pytest.raises(UserError, match="does not exist"):
        load_dataset(tmp_path / "nope.npz")


def test_check_fits_names_both_shapes(digits):
    with pytest.raises(UserError, match=r"\(8, 8, 1\).*\(32, 32, 3\)"):
        check_fits(digits, (None, 32, 32, 3))
    check_fits(digits, (None, 8, 8, 1))


def test_model_format_detects_by_content(tmp_path: Path):
    fake = tmp_path / "random.keras"
    fake.write_bytes(np.random.default_rng(0).bytes(256))
    with pytest.raises(NotAModelError):
        model_format(fake)
    fake_tflite = tmp_path / "random.tflite"
    fake_tflite.write_bytes(b"hello world, not a flatbuffer")
    with pytest.raises(NotAModelError):
        model_format(fake_tflite)
    with pytest.raises(UserError, match="does not exist"):
        model_format(tmp_path / "absent.keras")


def test_manifest_round_trip_and_rejects_junk(tmp_path: Path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\x00" * 1000)
    manifest = build_manifest(
        model, step="convert", options={"quantize": "none"}, quantization="none"
    )
    assert manifest.gzip_bytes < manifest.size_bytes == 1000
    path = write_manifest(model, manifest)
    assert path.name == "m.tflite.json"
    loaded = read_manifest(model)
    assert loaded == manifest
    with pytest.raises(UserError, match="not valid JSON"):
        parse_manifest(b"{", "x.json")
    with pytest.raises(UserError, match="unknown field"):
        parse_manifest(json.dumps({**manifest.to_dict(), "surprise": 1}), "x.json")
    with pytest.raises(UserError, match="wrong type"):
        parse_manifest(json.dumps({**manifest.to_dict(), "size_bytes": "big"}), "x.json")


def test_pyproject_license_is_an_spdx_string_setuptools_reads_without_warning():
    """The table form makes every `pip install` print setuptools' deprecation warning."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"
    assert "setuptools>=77" in project["build-system"]["requires"]  # first to read SPDX strings
    assert not any("License ::" in c for c in project["project"].get("classifiers", []))
