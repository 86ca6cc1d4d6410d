"""The host hashes a model file once per process while it stays the same (artifacts.cached_sha256),
and again as soon as it changes, even to the same size with its mtime put back."""

from __future__ import annotations

import hashlib
import os
import shutil
import time

from edgeprune.fleet import artifacts
from edgeprune.fleet.artifacts import load_model


def counting_hashes(monkeypatch) -> list[str]:
    """The real sha256_file, with each file it reads noted."""
    read: list[str] = []
    real = artifacts.sha256_file

    def sha256_file(path):
        read.append(str(path))
        return real(path)

    monkeypatch.setattr(artifacts, "sha256_file", sha256_file)
    return read


def settle() -> None:
    time.sleep(artifacts.RACY_S + 0.1)  # past the window in which a file is never cached


def test_an_unchanged_model_is_hashed_once(tmp_path, tiny_tflite, monkeypatch):
    model = tmp_path / "m.tflite"
    shutil.copyfile(tiny_tflite, model)
    settle()
    read = counting_hashes(monkeypatch)
    first = [load_model(model) for _ in range(8)]  # 8 devices, one command
    assert {m.sha256 for m in first} == {hashlib.sha256(model.read_bytes()).hexdigest()}
    assert read == [str(model.resolve())]


def test_a_rewritten_model_of_the_same_size_and_mtime_is_hashed_again(
    tmp_path, tiny_tflite, monkeypatch
):
    model = tmp_path / "m.tflite"
    shutil.copyfile(tiny_tflite, model)
    settle()
    before = load_model(model)
    stamp = model.stat()
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF  # same size, new content (a flatbuffer's last byte: still loads)
    model.write_bytes(bytes(data))
    os.utime(model, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # mtime put back
    assert (model.stat().st_size, model.stat().st_mtime_ns) == (stamp.st_size, stamp.st_mtime_ns)
    read = counting_hashes(monkeypatch)
    after = load_model(model)
    assert after.sha256 == hashlib.sha256(bytes(data)).hexdigest() != before.sha256
    assert read == [str(model.resolve())]


def test_a_model_written_just_now_is_not_cached(tmp_path, tiny_tflite, monkeypatch):
    """Within the file system clock's tick a second write could leave every stamp alike."""
    model = tmp_path / "m.tflite"
    shutil.copyfile(tiny_tflite, model)
    read = counting_hashes(monkeypatch)
    load_model(model)
    load_model(model)
    assert len(read) == 2
