"""Reading and writing model files, with errors a user can act on.

Formats: Keras 3 `.keras` (zip), legacy `.h5`, TensorFlow SavedModel directories and
`.tflite` flatbuffers. Writers go through a temporary file so a crash leaves nothing.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from edgeprune import _tf
from edgeprune.errors import NotAModelError, UserError
from edgeprune.files import atomic_output, check_input_path, check_output_path

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
TFLITE_MAGIC = b"TFL3"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
MAX_MODEL_BYTES = 2 << 30
"""Most a `.keras` archive may unpack to (declared sizes), unless raised."""
MAX_MODEL_BYTES_ENV = "EDGEPRUNE_MAX_MODEL_BYTES"
MAX_CONFIG_BYTES = 64 << 20
"""Most its JSON parts (config.json, metadata.json) may hold: they describe, not store."""


def model_format(path: str | os.PathLike[str]) -> str:
    """'keras' | 'h5' | 'savedmodel' | 'tflite', judged from the content, not only the name."""
    resolved = check_input_path(path)
    if resolved.is_dir():
        if (resolved / "saved_model.pb").exists():
            return "savedmodel"
        raise NotAModelError(
            f"{str(path)!r} is a directory without saved_model.pb; not a SavedModel"
        )
    head = resolved.open("rb").read(8)
    if len(head) >= 8 and head[4:8] == TFLITE_MAGIC:
        return "tflite"
    if head.startswith(HDF5_MAGIC):
        return "h5"
    if zipfile.is_zipfile(resolved):
        with zipfile.ZipFile(resolved) as archive:
            names = set(archive.namelist())
        if "config.json" in names:
            return "keras"
    raise NotAModelError(
        f"{str(path)!r} is not a model edgeprune can read (.keras, .h5, SavedModel dir or .tflite)"
    )


def load_keras_model(
    path: str | os.PathLike[str],
    max_uncompressed_bytes: int | None = None,
    custom_objects: str | ModuleType | Mapping[str, Any] | None = None,
) -> Any:
    """Load a `.keras`/`.h5` model for editing; SavedModels and .tflite are refused with a hint.

    `max_uncompressed_bytes`: see `check_keras_archive` (a zip bomb is refused unread).
    `custom_objects`: the user's layers, as `FILE.py` / `pkg.module` (imported through
    `edgeprune.user_code`, see `collect_custom_objects`), a module, or a {name: object} dict.
    """
    objects = collect_custom_objects(custom_objects)
    fmt = model_format(path)
    if fmt == "tflite":
        raise UserError(
            f"{str(path)!r} is a .tflite model; this step needs the Keras model (.keras or .h5)"
        )
    if fmt == "savedmodel":
        raise UserError(
            f"{str(path)!r} is a SavedModel, which has no Keras layers to edit; save it with "
            "model.save('model.keras') first"
        )
    if fmt == "h5" and Path(path).suffix.lower() == ".keras":
        raise NotAModelError(
            f"{str(path)!r} is an HDF5 (legacy .h5) model named .keras, which Keras reads as a "
            "zip archive; rename it to .h5"
        )
    if fmt == "keras":
        check_keras_archive(path, max_uncompressed_bytes)
    keras = _tf.keras()
    import edgeprune.qat_layers  # noqa: F401  (registers the QAT layers a .keras file may use)

    try:
        with _tf.quiet_native_output(), keras.saving.custom_object_scope(objects):
            return keras.models.load_model(path, compile=False, custom_objects=objects)
    except Exception as exc:  # Keras raises many types for a bad or foreign file
        raise _load_error(path, exc, custom_objects) from None


_MISSING_CLASS = re.compile(
    r"(?:Could not locate (?:class|function) |Unknown (?:layer|object|loss|metric|activation)"
    r"(?: type)?:? )'?([A-Za-z_][A-Za-z0-9_.>]*)'?"
)


def _load_error(
    path: str | os.PathLike[str], exc: Exception, given: object
) -> NotAModelError | UserError:
    """One line for a failed load: a missing custom class is named with the flag that gives it."""
    text = str(exc)
    missing = _MISSING_CLASS.search(text)
    if missing:
        name = missing.group(1)
        if given is None:
            return UserError(
                f"{str(path)!r} uses the custom object {name!r}, which Keras does not know; "
                "name the module that defines it with --custom-objects FILE.py (or pkg.module)",
                params=("custom_objects",),
            )
        return UserError(
            f"{str(path)!r} uses the custom object {name!r}, which {_label(given)} does not "
            "define or register; add it there (registered with "
            "keras.saving.register_keras_serializable or listed in CUSTOM_OBJECTS)",
            params=("custom_objects",),
        )
    cause = text.split("Exception encountered:", 1)[-1]
    message = _sentences(cause) or _sentences(text) or type(exc).__name__
    return NotAModelError(f"{str(path)!r} could not be loaded as a Keras model: {message}")


def _label(given: object) -> str:
    if isinstance(given, str):
        return repr(given)
    if isinstance(given, ModuleType):
        return f"module {given.__name__!r}"
    return "the given custom_objects"


def collect_custom_objects(
    spec: str | ModuleType | Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The objects a model may need from the user's module, by the name Keras looks up.

    Importing the module runs its `keras.saving.register_keras_serializable` decorators, so
    Keras' registry finds those classes by itself; the module's `CUSTOM_OBJECTS` dict and the
    Layer / Loss / Metric / Model subclasses it defines are passed as `custom_objects` too (for
    unregistered classes and `.h5` files, which look names up plainly).
    """
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        return dict(spec)
    from edgeprune.user_code import load_module

    module = spec if isinstance(spec, ModuleType) else load_module(spec, "custom_objects")
    keras = _tf.keras()
    bases = tuple(
        base
        for base in (
            keras.layers.Layer,
            keras.losses.Loss,
            keras.metrics.Metric,
            keras.initializers.Initializer,
            keras.regularizers.Regularizer,
            keras.constraints.Constraint,
        )
        if isinstance(base, type)
    )
    found: dict[str, Any] = {}
    for name, value in vars(module).items():
        if (
            isinstance(value, type)
            and issubclass(value, bases)
            and getattr(value, "__module__", None) == module.__name__
        ):
            found[name] = value
    listed = getattr(module, "CUSTOM_OBJECTS", None)
    if listed is not None:
        if not isinstance(listed, Mapping) or not all(isinstance(k, str) for k in listed):
            raise UserError(
                f"custom_objects: CUSTOM_OBJECTS in {_label(spec)} must be a dict of "
                "{name: class or function}",
                params=("custom_objects",),
            )
        found.update(listed)
    return found


def check_keras_archive(
    path: str | os.PathLike[str], max_uncompressed_bytes: int | None = None
) -> None:
    """Refuse a `.keras` zip whose declared sizes are a bomb, or that holds a Lambda layer.

    `max_uncompressed_bytes` (default: `EDGEPRUNE_MAX_MODEL_BYTES`, else 2 GiB) bounds the
    unpacked total; zipfile never reads past a member's declared size, so this is a real bound.
    """
    limit = _model_limit(max_uncompressed_bytes)
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        for member in members:
            if member.filename in ("config.json", "metadata.json") and (
                member.file_size > MAX_CONFIG_BYTES
            ):
                raise NotAModelError(
                    f"{str(path)!r}: its {member.filename} unpacks to {_mb(member.file_size)} "
                    f"(at most {_mb(MAX_CONFIG_BYTES)} is a model description); not a Keras model"
                )
        total = sum(member.file_size for member in members)
        if total > limit:
            raise NotAModelError(
                f"{str(path)!r} unpacks to {_mb(total)}, more than the {_mb(limit)} allowed; "
                f"if the model is that large, raise max_uncompressed_bytes (or set "
                f"{MAX_MODEL_BYTES_ENV}=BYTES)",
                params=("max_uncompressed_bytes",),
            )
        if "config.json" in archive.namelist():
            lambdas = _lambda_layers(archive.read("config.json"))
            if lambdas:
                raise NotAModelError(
                    f"{str(path)!r} holds a Lambda layer ({lambdas[0]}), whose Python code "
                    "edgeprune does not run from a file; rebuild the model with built-in or "
                    "registered custom layers and save it again."
                )


def _model_limit(given: int | None) -> int:
    if given is not None:
        return given
    raw = os.environ.get(MAX_MODEL_BYTES_ENV, "").strip()
    if not raw:
        return MAX_MODEL_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise UserError(f"{MAX_MODEL_BYTES_ENV}={raw[:40]!r}: give a positive number of bytes")
    return value


def _lambda_layers(config: bytes) -> list[str]:
    """Names of the Lambda layers a Keras config describes (at any depth)."""
    try:
        document = json.loads(config)
    except ValueError:
        return []  # Keras says what is wrong with it
    found: list[str] = []
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("class_name") == "Lambda":
                inner = node.get("config")
                name = inner.get("name") if isinstance(inner, dict) else None
                found.append(str(name or "unnamed")[:80])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _sentences(text: str, limit: int = 300) -> str:
    """The first paragraph of `text` as one line, whole sentences up to `limit` characters.

    Never cut mid-word: when even the first sentence is too long it ends at a word with " ...".
    """
    paragraph = re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0] if text.strip() else ""
    first = " ".join(paragraph.split())
    if len(first) <= limit:
        return first
    kept = ""
    for sentence in re.split(r"(?<=[.!?])\s+", first):
        if len(kept) + len(sentence) + 1 > limit:
            break
        kept = f"{kept} {sentence}".strip()
    if kept:
        return kept
    cut = first[: limit + 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else first[:limit]) + " ..."


def _mb(value: int) -> str:
    return f"{value / (1 << 20):.1f} MB"


def save_keras_model(model: Any, path: str | os.PathLike[str]) -> Path:
    """Save atomically as `.keras` (or `.h5`); the result loads with plain `keras.models.load_model`."""
    target = check_output_path(path, (".keras", ".h5"), "output model")
    with atomic_output(target) as tmp, _tf.quiet_native_output():
        model.save(tmp)
    return target


def has_graph(model: Any) -> bool:
    """Whether `model` has a layer graph with inputs (functional or Sequential, not subclassed)."""
    try:
        return bool(model.inputs)
    except (AttributeError, ValueError):
        return False


def require_graph(model: Any, label: str, needed_for: str) -> None:
    """Refuse a subclassed keras.Model, which has no input signature, before any work."""
    if not has_graph(model):
        raise UserError(
            f"{label!r} is a subclassed keras.Model ({type(model).__name__}) without inputs, "
            f"and {needed_for} needs its input shapes; call it once on a batch and "
            "model.export(DIR) it (a SavedModel, which converts), or rebuild it functionally"
        )


def count_parameters(model: Any) -> int:
    return int(sum(int(_size(w.shape)) for w in model.weights))


def _size(shape: Any) -> int:
    total = 1
    for dim in shape:
        total *= int(dim)
    return total
