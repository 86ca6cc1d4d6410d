"""The stage cache: content-hash keys and finished-stage records in the work directory.

A stage's key hashes everything that decides its output: the parent stage's key, the
step's options, the data it reads (file hashes), the source of the edgeprune code that
runs it, and the versions of TensorFlow / Keras / LiteRT / numpy. A stage is done when
its directory holds `stage.json` with that key; the directory is built under a temporary
name and renamed into place, so a crash leaves no half-finished stage that looks done.

Layout under the work dir (default ./build/<recipe name>/)::

    stages/<kind>-<key>/      model.keras | model.tflite (+ manifest), stage.json
    models/<variant>.tflite   the variants under their names (what devices and tables show)
    inputs/validation-<key>.npz  validation samples shipped for on-device accuracy
    bench/<key>.json          which stored measurement answers a (model, device, options)
    report.md, report.html, plots/*.png
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from device_agents.integrity import atomic_write_text, sha256_file
from edgeprune.errors import UserError

PACKAGE = Path(__file__).resolve().parent.parent
KEY_LENGTH = 20
RECORD = "stage.json"

# The edgeprune sources whose change must redo a stage (paths relative to edgeprune/).
_RECIPE_CODE = ("models.py", "keras_stats.py", "recipes/stages.py", "recipes/context.py")
STAGE_CODE: dict[str, tuple[str, ...]] = {
    "base": ("demo.py", "data.py", "prune/training.py", *_RECIPE_CODE),
    "xnnpack_fix": ("xnnpack", *_RECIPE_CODE),
    "prune": ("prune", "xnnpack", *_RECIPE_CODE),
    "channels": ("channels", *_RECIPE_CODE),
    "finetune": ("channels/finetune.py", "prune/constraint.py", *_RECIPE_CODE),
    "qat": ("quantize", "qat_layers.py", "prune/task_training.py", *_RECIPE_CODE),
    "convert": ("tflite", "manifest.py", "qat_layers.py", *_RECIPE_CODE),
    "adapt": ("adapt", "channels", "workflows/adapt.py", *_RECIPE_CODE),
}
KEY_TOOLS = ("tensorflow", "keras", "ai-edge-litert", "numpy", "scikit-learn")


def content_key(payload: dict[str, Any]) -> str:
    """sha256 of the payload's canonical JSON, shortened (collisions are not a concern here)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]


@functools.cache
def code_fingerprint(kind: str) -> str:
    """Hash of the source files that implement stage `kind` (a code change redoes the stage)."""
    digest = hashlib.sha256()
    for relative in STAGE_CODE.get(kind, ()):
        path = PACKAGE / relative
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.is_file() else []
        for file in files:
            digest.update(str(file.relative_to(PACKAGE)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:KEY_LENGTH]


@functools.lru_cache(maxsize=1)
def tool_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {}
    for package in KEY_TOOLS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    return versions


def data_fingerprint(spec: str) -> str:
    """Content identity of a dataset spec: a file's sha256, a folder's listing, a built-in's version."""
    if spec == "digits":
        return f"digits/scikit-learn-{tool_versions().get('scikit-learn', '?')}"
    path = Path(spec)
    if path.is_file():
        return "sha256:" + sha256_file(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            stat = file.stat()
            digest.update(f"{file.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        return "tree:" + digest.hexdigest()
    raise UserError(
        f"dataset {spec!r} does not exist; use 'digits', an .npz with x/y, or an image folder"
    )


@dataclass
class StageRecord:
    """What a finished stage left: its outputs (file names in its directory) and numbers."""

    kind: str
    key: str
    outputs: dict[str, str]
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    created_at: str = ""

    def output(self, cache: StageCache, name: str) -> Path:
        return cache.stage_dir(self.kind, self.key) / self.outputs[name]


class StageCache:
    """The `stages/` directory of one work dir."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.root = workdir / "stages"

    def stage_dir(self, kind: str, key: str) -> Path:
        return self.root / f"{kind}-{key}"

    def load(self, kind: str, key: str) -> StageRecord | None:
        """The record of a finished stage with this key, or None (missing or incomplete)."""
        folder = self.stage_dir(kind, key)
        try:
            data = json.loads((folder / RECORD).read_text(encoding="utf-8"))
            record = StageRecord(**data)
        except (OSError, ValueError, TypeError):
            return None
        if record.key != key or record.kind != kind:
            return None
        if not all((folder / name).exists() for name in record.outputs.values()):
            return None
        return record

    @contextlib.contextmanager
    def building(self, kind: str, key: str) -> Iterator[Path]:
        """A fresh temporary directory; renamed to the stage's directory when the block succeeds."""
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.stage_dir(kind, key)
        temp = self.root / f".tmp-{kind}-{key}-{os.getpid()}"
        shutil.rmtree(temp, ignore_errors=True)
        temp.mkdir()
        try:
            yield temp
            if final.exists():
                shutil.rmtree(final)
            os.replace(temp, final)
        finally:
            shutil.rmtree(temp, ignore_errors=True)

    def save(self, folder: Path, record: StageRecord) -> None:
        """Write the record last: its presence is what marks the stage as done."""
        record.created_at = record.created_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        atomic_write_text(folder / RECORD, json.dumps(asdict(record), indent=2) + "\n", 0o644)

    def clean_partials(self) -> int:
        """Remove temporary directories a crashed run left behind; returns how many."""
        if not self.root.is_dir():
            return 0
        removed = 0
        for leftover in self.root.glob(".tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
            removed += 1
        return removed


@contextlib.contextmanager
def workdir_lock(workdir: Path) -> Iterator[None]:
    """One `edgeprune run` per work dir at a time; a second one is told which process holds it."""
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"work directory {str(workdir)!r} cannot be created: {exc}") from None
    lock_path = workdir / ".lock"
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise UserError(
                f"another edgeprune run (pid {holder}) is using {workdir}; wait for it to "
                "finish or pass another `workdir`",
                params=("workdir",),
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
