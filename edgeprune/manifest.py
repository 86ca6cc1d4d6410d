"""The artifact manifest: a small JSON beside every model file we write (`OUT.tflite.json`).

Deploy and results key everything by the model's sha256, and the manifest is how a number
measured on a board is tied back to the options that made the model. Schema::

    {"schema": 1, "file": "model.tflite", "format": "tflite" | "keras",
     "sha256": "...", "size_bytes": 123, "gzip_bytes": 45,
     "source": {"path": "in.keras", "sha256": "..."} | null,
     "step": "prune" | "convert" | "channels" | ...,
     "options": {... exact options of the step ...},
     "recipe": {...} | null,
     "sparsity": {"overall": 0.8, "layers": {"conv1": 0.79, ...}} | null,
     "quantization": "none" | "dynamic" | "float16" | "int8" | null,
     "accuracy": {"top1": 0.97, "dataset": "digits", ...} | null,
     "tools": {"edgeprune": "...", "tensorflow": "...", ...},
     "created_at": "2026-11-21T12:00:00Z", "extra": {...}}
"""

from __future__ import annotations

import gzip
import json
import os
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from device_agents.integrity import atomic_write_text, sha256_file
from edgeprune.errors import UserError

MANIFEST_SCHEMA = 1
MANIFEST_SUFFIX = ".json"
_TOOL_PACKAGES = ("edgeprune", "tensorflow", "keras", "ai-edge-litert", "numpy")


@dataclass
class Manifest:
    file: str
    format: str
    sha256: str
    size_bytes: int
    gzip_bytes: int
    step: str
    options: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] | None = None
    recipe: dict[str, Any] | None = None
    sparsity: dict[str, Any] | None = None
    quantization: str | None = None
    accuracy: dict[str, Any] | None = None
    tools: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    schema: int = MANIFEST_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def manifest_path(model_path: str | os.PathLike[str]) -> Path:
    """`model.tflite` -> `model.tflite.json` (for a SavedModel dir: `dir.json` beside it)."""
    path = Path(model_path)
    return path.with_name(path.name + MANIFEST_SUFFIX)


def gzip_size(path: str | os.PathLike[str]) -> int:
    """Size after gzip -9: what sparsity buys on the wire and on disk."""
    data = Path(path).read_bytes()
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def tool_versions() -> dict[str, str]:
    versions = {}
    for package in _TOOL_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def source_info(source: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    if source is None:
        return None
    path = Path(source)
    info: dict[str, Any] = {"path": str(path)}
    if path.is_file():
        info["sha256"] = sha256_file(path)
    return info


def build_manifest(
    model_path: str | os.PathLike[str],
    *,
    step: str,
    options: dict[str, Any] | None = None,
    source: str | os.PathLike[str] | None = None,
    sparsity: dict[str, Any] | None = None,
    quantization: str | None = None,
    accuracy: dict[str, Any] | None = None,
    recipe: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Manifest:
    path = Path(model_path)
    fmt = "tflite" if path.suffix == ".tflite" else "keras"
    return Manifest(
        file=path.name,
        format=fmt,
        sha256=sha256_file(path),
        size_bytes=path.stat().st_size,
        gzip_bytes=gzip_size(path),
        step=step,
        options=_jsonable(options or {}),
        source=source_info(source),
        recipe=recipe,
        sparsity=_jsonable(sparsity) if sparsity is not None else None,
        quantization=quantization,
        accuracy=_jsonable(accuracy) if accuracy is not None else None,
        tools=tool_versions(),
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        extra=_jsonable(extra or {}),
    )


def write_manifest(model_path: str | os.PathLike[str], manifest: Manifest) -> Path:
    target = manifest_path(model_path)
    atomic_write_text(
        target, json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n", 0o644
    )
    return target


def read_manifest(model_path: str | os.PathLike[str]) -> Manifest | None:
    """The manifest beside a model, or None when there is none; a broken one is a UserError."""
    target = manifest_path(model_path)
    if not target.exists():
        return None
    return parse_manifest(target.read_bytes(), str(target))


def parse_manifest(raw: bytes | str, where: str = "manifest") -> Manifest:
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise UserError(f"{where} is not valid JSON; delete it or re-create the model") from None
    if not isinstance(obj, dict):
        raise UserError(f"{where} must hold a JSON object")
    if obj.get("schema") != MANIFEST_SCHEMA:
        raise UserError(f"{where} has schema {obj.get('schema')!r}; expected {MANIFEST_SCHEMA}")
    known = set(Manifest.__dataclass_fields__)
    unknown = sorted(set(obj) - known)
    if unknown:
        raise UserError(f"{where} has unknown field(s): {', '.join(map(repr, unknown))}")
    required = ("file", "format", "sha256", "size_bytes", "gzip_bytes", "step")
    missing = [k for k in required if k not in obj]
    if missing:
        raise UserError(f"{where} is missing field(s): {', '.join(missing)}")
    types: dict[str, tuple[type, ...]] = {
        "file": (str,),
        "format": (str,),
        "sha256": (str,),
        "size_bytes": (int,),
        "gzip_bytes": (int,),
        "step": (str,),
        "options": (dict,),
        "source": (dict, type(None)),
        "recipe": (dict, type(None)),
        "sparsity": (dict, type(None)),
        "quantization": (str, type(None)),
        "accuracy": (dict, type(None)),
        "tools": (dict,),
        "created_at": (str,),
        "extra": (dict,),
        "schema": (int,),
    }
    for key, value in obj.items():
        if isinstance(value, bool) or not isinstance(value, types[key]):
            raise UserError(f"{where}: field {key!r} has the wrong type ({type(value).__name__})")
    return Manifest(**obj)


def _jsonable(value: Any) -> Any:
    """Round-trip through JSON so numpy scalars and Paths become plain values."""

    def default(item: Any) -> Any:
        if hasattr(item, "item"):
            return item.item()
        if hasattr(item, "tolist"):
            return item.tolist()
        return str(item)

    return json.loads(json.dumps(value, default=default))
