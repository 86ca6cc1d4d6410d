"""What `convert` starts from: a Keras model (object or file) or a SavedModel directory.

Holds the one converter constructor per kind and the source's weight sparsity, which
decides whether weights are stored sparse and goes into the manifest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune import _tf
from edgeprune._tf import quiet_native_output as quiet
from edgeprune.errors import UserError
from edgeprune.keras_stats import model_stats
from edgeprune.models import load_keras_model, model_format, require_graph

_KERNEL_NAMES = ("kernel", "depthwise_kernel", "pointwise_kernel")


@dataclass
class ConversionSource:
    label: str
    path: Path | None  # None for a model object given in Python
    keras_model: Any | None  # None for a SavedModel
    input_shapes: list[tuple[int | None, ...]]
    sparsity: dict[str, Any]  # {"overall": f, "layers": {name: f}} over prunable kernels
    weight_bytes: int = 0  # bytes of the variables the model computes with
    saved_model: Any | None = None  # the loaded SavedModel (its trackable root)
    signature: Any | None = None  # its serving_default concrete function

    @property
    def kind(self) -> str:
        return "keras" if self.keras_model is not None else "savedmodel"

    def converter(self) -> Any:
        """A converter that freezes the variables into the .tflite.

        A SavedModel goes through its serving function with the loaded trackable, so its
        captured variables become constants: `from_saved_model` on a `tf.saved_model.save`
        directory (no Keras metadata) keeps them as VAR_HANDLE/READ_VARIABLE ops and writes
        a .tflite without weights.
        """
        tf = _tf.tf()
        with quiet():
            if self.keras_model is not None:
                return tf.lite.TFLiteConverter.from_keras_model(self.keras_model)
            return tf.lite.TFLiteConverter.from_concrete_functions(
                [self.signature], self.saved_model
            )

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The source's own outputs (one-output models), for parity with the .tflite."""
        if self.keras_model is not None:
            with quiet():
                return np.asarray(self.keras_model.predict(x, verbose=0), dtype=np.float32)
        tf = _tf.tf()
        assert self.signature is not None  # a SavedModel source always has one
        name, spec = next(iter(self.signature.structured_input_signature[1].items()))
        result = self.signature(**{name: tf.constant(x, dtype=spec.dtype)})
        return np.asarray(next(iter(result.values())).numpy(), dtype=np.float32)


def open_source(
    source: str | os.PathLike[str] | Any, custom_objects: str | None = None
) -> ConversionSource:
    """Load the model to convert; a .tflite or a non-model gets a one-line UserError."""
    if not isinstance(source, (str, os.PathLike)):
        if not hasattr(source, "layers"):
            raise UserError(
                f"cannot convert a {type(source).__name__}; give a Keras model or a model path"
            )
        return _keras_source(source, getattr(source, "name", "model"), None)
    path = Path(source)
    fmt = model_format(path)
    if fmt == "tflite":
        raise UserError(
            f"{str(source)!r} is already a .tflite model; convert the Keras model or SavedModel it came from"
        )
    if fmt == "savedmodel":
        return _saved_model_source(path)
    return _keras_source(load_keras_model(path, custom_objects=custom_objects), str(source), path)


def _keras_source(model: Any, label: str, path: Path | None) -> ConversionSource:
    require_graph(model, label, "conversion")
    stats = model_stats(model)
    layers = {layer.name: layer.kernel_sparsity for layer in stats.layers if layer.kernel_size}
    shapes = [tuple(t.shape) for t in model.inputs]
    return ConversionSource(
        label=label,
        path=path,
        keras_model=model,
        input_shapes=shapes,
        sparsity={"overall": stats.kernel_sparsity, "layers": layers},
        weight_bytes=variable_bytes(model.weights),
    )


def _saved_model_source(path: Path) -> ConversionSource:
    tf = _tf.tf()
    try:
        with quiet():
            loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # TF raises many types for a broken SavedModel
        message = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{str(path)!r} cannot be loaded as a SavedModel: {message}") from None
    signature = getattr(loaded, "signatures", {}).get("serving_default")
    if signature is None:
        raise UserError(f"{str(path)!r} has no 'serving_default' signature to convert")
    shapes = [
        tuple(spec.shape.as_list()) for spec in signature.structured_input_signature[1].values()
    ]
    variables = saved_model_variables(loaded)
    return ConversionSource(
        label=str(path),
        path=path,
        keras_model=None,
        input_shapes=shapes,
        sparsity=saved_model_sparsity(loaded),
        weight_bytes=variable_bytes(variables),
        saved_model=loaded,
        signature=signature,
    )


def saved_model_variables(loaded: Any) -> list[Any]:
    """The variables a SavedModel computes with, each once.

    A `tf.saved_model.save` directory of a Keras 3 model has no `.variables` on its root;
    its serving function captures them, so those are read first.
    """
    found: dict[int, Any] = {}
    signature = getattr(loaded, "signatures", {}).get("serving_default")
    for variable in [
        *(getattr(signature, "variables", None) or []),
        *(getattr(loaded, "variables", None) or []),
    ]:
        found.setdefault(id(variable), variable)
    return list(found.values())


def variable_bytes(variables: Any) -> int:
    """Bytes the values of `variables` take (what a converted model should mostly keep)."""
    total = 0
    for variable in variables:
        try:
            itemsize = np.dtype(getattr(variable.dtype, "as_numpy_dtype", variable.dtype)).itemsize
        except TypeError:  # bfloat16 and other types numpy does not name
            itemsize = 2 if "16" in str(variable.dtype) else 4
        count = 1
        for dim in variable.shape:
            count *= int(dim)
        total += count * itemsize
    return total


def saved_model_sparsity(loaded: Any) -> dict[str, Any]:
    """Zeros over the kernel variables of a SavedModel (no Keras layers to ask)."""
    layers: dict[str, float] = {}
    size = zeros = 0
    for variable in saved_model_variables(loaded):
        name = variable.name.split(":")[0]
        if name.rsplit("/", 1)[-1] not in _KERNEL_NAMES or len(variable.shape) < 2:
            continue
        values = np.asarray(variable.numpy())
        layers[name.rsplit("/", 1)[0]] = float(np.mean(values == 0))
        size += values.size
        zeros += int(np.count_nonzero(values == 0))
    return {"overall": zeros / size if size else 0.0, "layers": layers}
