"""One `predict(x) -> outputs` for every model format, so evaluation and parity compare like with like.

A predictor is a Keras model in memory, a `.keras`/`.h5` file, a SavedModel directory or a
`.tflite` file (run by `TFLiteRunner`). All take float samples and return float32 outputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgeprune import _tf
from edgeprune._tf import quiet_native_output as quiet
from edgeprune.errors import UserError
from edgeprune.models import load_keras_model, model_format, require_graph
from edgeprune.tflite.runner import ModelRunError, TFLiteRunner, runtime_version


class Predictor(Protocol):
    label: str
    kind: str  # "keras" | "savedmodel" | "tflite"
    notes: list[str]

    @property
    def input_shape(self) -> tuple[int | None, ...]: ...  # read from the model, never set

    def predict(self, x: np.ndarray) -> np.ndarray: ...


@dataclass
class KerasPredictor:
    model: Any
    label: str
    kind: str = "keras"
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        require_graph(self.model, self.label, "evaluation")
        if len(self.model.inputs) != 1 or len(self.model.outputs) != 1:
            raise UserError(
                f"{self.label!r} has {len(self.model.inputs)} inputs and "
                f"{len(self.model.outputs)} outputs; evaluation needs one of each"
            )

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        return tuple(self.model.inputs[0].shape)

    def predict(self, x: np.ndarray) -> np.ndarray:
        with quiet():
            outputs = self.model.predict(x, batch_size=256, verbose=0)
        return np.asarray(outputs, dtype=np.float32)


@dataclass
class SavedModelPredictor:
    path: Path
    label: str
    kind: str = "savedmodel"
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        tf = _tf.tf()
        try:
            with quiet():
                self._loaded = tf.saved_model.load(str(self.path))
        except Exception as exc:  # TF raises many types for a broken SavedModel
            raise UserError(f"{self.label!r} cannot be loaded as a SavedModel: {exc}") from None
        signature = getattr(self._loaded, "signatures", {}).get("serving_default")
        if signature is None:
            raise UserError(f"{self.label!r} has no 'serving_default' signature to run")
        inputs = signature.structured_input_signature[1]
        if len(inputs) != 1 or len(signature.structured_outputs) != 1:
            raise UserError(
                f"{self.label!r} has {len(inputs)} inputs and {len(signature.structured_outputs)} "
                "outputs; evaluation needs one of each"
            )
        self._signature = signature
        self._input_name, spec = next(iter(inputs.items()))
        self._input_shape = tuple(spec.shape.as_list())
        self._dtype = spec.dtype

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        return self._input_shape

    def predict(self, x: np.ndarray) -> np.ndarray:
        tf = _tf.tf()
        parts = []
        for start in range(0, len(x), 256):
            batch = tf.constant(x[start : start + 256], dtype=self._dtype)
            result = self._signature(**{self._input_name: batch})
            parts.append(next(iter(result.values())).numpy())
        return np.concatenate(parts).astype(np.float32, copy=False)


@dataclass
class TFLitePredictor:
    path: Path
    label: str
    batch_size: int = 64
    kind: str = "tflite"
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        try:
            self.runner = TFLiteRunner(self.path, label=self.label)
        except ModelRunError as exc:  # a delegate refused an op: the plain kernels still run it
            self.runner = TFLiteRunner(self.path, label=self.label, use_xnnpack=False)
            self.notes.append(f"ran without XNNPACK, which refused the model: {exc}")
        if len(self.runner.inputs) != 1 or len(self.runner.outputs) != 1:
            raise UserError(
                f"{self.label!r} has {len(self.runner.inputs)} inputs and "
                f"{len(self.runner.outputs)} outputs; evaluation needs one of each"
            )

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        signature = self.runner.inputs[0].shape_signature
        return tuple(None if d < 0 else d for d in signature)

    @property
    def runtime(self) -> dict[str, Any]:
        return {
            "name": "ai-edge-litert",
            "version": runtime_version(),
            "delegate": self.runner.delegate,
            "batched": self.runner.batch_resizable,
        }

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.runner.predict(x, batch_size=self.batch_size)


def load_predictor(
    model: str | os.PathLike[str] | Any,
    label: str | None = None,
    custom_objects: str | None = None,
) -> Predictor:
    """A predictor for a Keras model object or a model path of any supported format."""
    if not isinstance(model, (str, os.PathLike)):
        return KerasPredictor(model, label or str(getattr(model, "name", "model")))
    path = Path(model)
    label = label or str(model)
    fmt = model_format(path)
    if fmt == "tflite":
        return TFLitePredictor(path, label)
    if fmt == "savedmodel":
        return SavedModelPredictor(path, label)
    return KerasPredictor(load_keras_model(path, custom_objects=custom_objects), label)
