"""The one model + manifest writer: both land, or nothing is left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from device_agents.integrity import sha256_file
from edgeprune.artifacts import artifact, save_keras_artifact
from edgeprune.manifest import manifest_path, read_manifest


def _write(art, payload: bytes = b"model bytes") -> None:
    art.path.write_bytes(payload)
    art.describe(step="test", options={"k": 1})


def test_model_and_manifest_land_together(tmp_path):
    target = tmp_path / "m.tflite"
    with artifact(target) as art:
        _write(art)
        assert not target.exists()  # nothing is in place before the block ends
    manifest = read_manifest(target)
    assert target.read_bytes() == b"model bytes"
    assert manifest is not None and manifest.file == "m.tflite" and manifest.step == "test"
    assert manifest.sha256 == sha256_file(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite", "m.tflite.json"]


def test_manifest_that_cannot_be_written_takes_the_model_back(tmp_path):
    target = tmp_path / "m.tflite"
    manifest_path(target).mkdir()  # the manifest's place is taken: its rename fails
    with pytest.raises(OSError), artifact(target) as art:
        _write(art)
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite.json"]


def test_model_that_cannot_be_saved_leaves_nothing(tmp_path):
    with pytest.raises(AttributeError):
        save_keras_artifact(object(), tmp_path / "m.keras", step="test")
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_while_describing_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt), artifact(tmp_path / "m.keras") as art:
        art.path.write_bytes(b"half a model")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_a_block_that_describes_nothing_writes_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="no manifest"), artifact(tmp_path / "m.keras") as art:
        art.path.write_bytes(b"model")
    assert list(tmp_path.iterdir()) == []


def test_a_keras_model_saves_with_its_manifest(tmp_path):
    from edgeprune import _tf
    from edgeprune.models import load_keras_model

    keras = _tf.keras()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    written = save_keras_artifact(model, tmp_path / "m.keras", step="test", options={"a": 1})
    assert written == Path(f"{tmp_path / 'm.keras'}.json")
    manifest = json.loads(written.read_text())
    assert manifest["file"] == "m.keras" and manifest["options"] == {"a": 1}
    assert manifest["sha256"] == sha256_file(tmp_path / "m.keras")
    assert load_keras_model(tmp_path / "m.keras").count_params() == model.count_params()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras", "m.keras.json"]
