"""Model files on the host, as deploy and bench see them: path, sha256, size and manifest."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from device_agents.integrity import sha256_file
from edgeprune.errors import UserError
from edgeprune.files import check_input_path
from edgeprune.manifest import Manifest, read_manifest

TFLITE_IDENTIFIER = b"TFL3"
_HASH_CACHE_LIMIT = 4096
RACY_S = 1.0

_hash_cache: dict[tuple[str, int, int, int, int, int], str] = {}
_hash_lock = threading.Lock()


def cached_sha256(path: Path) -> str:
    """sha256 of a local file, hashed once per process while the file stays the same
    (a deploy to 8 devices, a bench after it, `ep.deploy` called in a loop).

    Keyed by (resolved path, device, inode, size, mtime_ns, ctime_ns): rewriting a file, even
    to the same size with its mtime set back, changes its ctime; replacing it changes its
    inode. A file changed in the last RACY_S seconds is hashed each time and not cached (a
    second write within one tick of the file system's clock would leave every stamp as it
    was), nor is one that changed while it was hashed.
    """
    resolved = str(Path(path).resolve())
    before = os.stat(resolved)
    key = (
        resolved,
        before.st_dev,
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
        before.st_ctime_ns,
    )
    with _hash_lock:
        known = _hash_cache.get(key)
    if known is not None:
        return known
    digest = sha256_file(resolved)
    after = os.stat(resolved)
    settled = time.time_ns() - max(after.st_mtime_ns, after.st_ctime_ns) > RACY_S * 1e9
    if settled and (after.st_ino, after.st_size, after.st_mtime_ns, after.st_ctime_ns) == key[2:]:
        with _hash_lock:
            if len(_hash_cache) >= _HASH_CACHE_LIMIT:
                _hash_cache.clear()
            _hash_cache[key] = digest
    return digest


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
    digest = cached_sha256(resolved)
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
