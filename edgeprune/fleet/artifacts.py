"""Model files on the host, as deploy and bench see them: path, sha256, size and manifest."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from device_agents.integrity import sha256_file
from edgeprune.errors import UserError
from edgeprune.files import check_input_path
from edgeprune.manifest import Manifest, read_manifest

TFLITE_IDENTIFIER = b"TFL3"


@dataclass(frozen=True)
class LocalModel:
    """A .tflite on the host; `name` is what tables show (the file name)."""

    path: Path
    sha256: str
    size_bytes: int
    manifest: Manifest | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def accuracy(self) -> float | None:
        """Top-1 from the manifest, when the model's maker measured it."""
        acc = (self.manifest.accuracy or {}) if self.manifest else {}
        for key in ("top1", "accuracy"):
            value = acc.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        return None


def load_model(path: str | os.PathLike[str]) -> LocalModel:
    """Check that `path` is a TFLite flatbuffer and hash it; a UserError names the file."""
    resolved = check_input_path(path, "model")
    if resolved.is_dir():
        raise UserError(f"model {str(path)!r} is a directory; give a .tflite file")
    with open(resolved, "rb") as handle:
        head = handle.read(8)
    if len(head) < 8 or head[4:8] != TFLITE_IDENTIFIER:
        raise UserError(
            f"model {str(path)!r} is not a TFLite flatbuffer; convert it first (edgeprune convert)"
        )
    manifest = read_manifest(resolved)
    digest = sha256_file(resolved)
    if manifest is not None and manifest.sha256 != digest:
        manifest = None  # stale manifest: the file changed since; do not borrow its numbers
    return LocalModel(resolved, digest, resolved.stat().st_size, manifest)


def load_models(paths: list[str]) -> list[LocalModel]:
    """All models, checked before any device is touched; the same file given twice counts once."""
    if not paths:
        raise UserError("give at least one model file (.tflite)")
    models: list[LocalModel] = []
    seen: set[str] = set()
    for path in paths:
        model = load_model(path)
        if model.sha256 not in seen:
            seen.add(model.sha256)
            models.append(model)
    return models


def as_local_models(models: Sequence[str | os.PathLike[str] | LocalModel]) -> list[LocalModel]:
    """Checked local models (sha256, manifest) from paths or `LocalModel`s, each file once."""
    if not models:
        return load_models([])  # its one error: give at least one model
    out: dict[str, LocalModel] = {}
    for given in models:
        model = given if isinstance(given, LocalModel) else load_model(str(given))
        out.setdefault(model.sha256, model)
    return list(out.values())
