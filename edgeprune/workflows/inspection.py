"""`inspect` with XNNPACK's verdict: the format layer's file facts plus the sparse path section.

The TFLite reader (`edgeprune.tflite.inspection`) knows files; whether XNNPACK will take its
sparse path is the xnnpack transform's rule. Composing the two here keeps the format layer
free of transforms, while the document stays the one `edgeprune inspect --json` has always
printed.
"""

from __future__ import annotations

import os
from typing import Any

from edgeprune.models import load_keras_model, model_format
from edgeprune.tflite import inspection as facts
from edgeprune.tflite.flatbuffer import read_model


def inspect_model(
    path: str | os.PathLike[str], custom_objects: str | None = None
) -> dict[str, Any]:
    """Inspect any supported model; `.tflite` and Keras files get an "xnnpack" section."""
    fmt = model_format(path)
    if fmt == "tflite":
        return inspect_tflite(path)
    if fmt == "savedmodel":
        return facts.inspect_saved_model(path)
    from edgeprune.xnnpack.policy import predicted_sparse_path  # pulls in the Keras rules

    keras_model = load_keras_model(path, custom_objects=custom_objects)
    report = facts.inspect_keras_file(path, keras_model)
    report["xnnpack"] = predicted_sparse_path(keras_model)
    return report


def inspect_tflite(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A `.tflite`'s file facts plus whether XNNPACK takes its sparse path (and why not)."""
    from edgeprune.xnnpack.verifier import check_sparse_path

    model = read_model(path)
    report = facts.inspect_tflite(path, model=model)
    report["xnnpack"] = check_sparse_path(model).to_dict()
    return report
