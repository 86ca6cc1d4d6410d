"""Reading and writing model files, with errors a user can act on.

Formats: Keras 3 `.keras` (zip), legacy `.h5`, TensorFlow SavedModel directories and
`.tflite` flatbuffers. Writers go through a temporary file so a crash leaves nothing.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

from edgeprune import _tf
from edgeprune.errors import NotAModelError, UserError
from edgeprune.files import atomic_output, check_input_path, check_output_path

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
TFLITE_MAGIC = b"TFL3"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


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


def load_keras_model(path: str | os.PathLike[str]) -> Any:
    """Load a `.keras`/`.h5` model for editing; SavedModels and .tflite are refused with a hint."""
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
    keras = _tf.keras()
    try:
        with _tf.quiet_native_output():
            return keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a bad or foreign file
        message = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise NotAModelError(
            f"{str(path)!r} could not be loaded as a Keras model: {message}"
        ) from None


def save_keras_model(model: Any, path: str | os.PathLike[str]) -> Path:
    """Save atomically as `.keras` (or `.h5`); the result loads with plain `keras.models.load_model`."""
    target = check_output_path(path, (".keras", ".h5"), "output model")
    with atomic_output(target) as tmp, _tf.quiet_native_output():
        model.save(tmp)
    return target


def count_parameters(model: Any) -> int:
    return int(sum(int(_size(w.shape)) for w in model.weights))


def _size(shape: Any) -> int:
    total = 1
    for dim in shape:
        total *= int(dim)
    return total
