"""One `predict_all(x) -> outputs` for every model format, so evaluation and parity compare like with like.

A predictor is a Keras model in memory, a `.keras`/`.h5` file, a SavedModel directory or a
`.tflite` file (run by `TFLiteRunner`). All take float samples and return float32 outputs,
one array per model output in the Keras model's order: a `.tflite` file's outputs are put
back in that order through its signature (`output_0`, `output_1`, ... or the outputs' own
names), where the converter may have shuffled the graph's output tensors. `predict` stays
for callers of single-output models.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgeprune import _tf
from edgeprune._tf import quiet_native_output as quiet
from edgeprune.errors import UserError
from edgeprune.models import load_keras_model, model_format, require_graph
from edgeprune.tasks.base import OutputInfo
from edgeprune.tasks.outputs import keras_outputs
from edgeprune.tflite.runner import ModelRunError, TFLiteRunner, runtime_version

_POSITIONAL = re.compile(r"^output_(\d+)$")


class Predictor(Protocol):
    label: str
    kind: str  # "keras" | "savedmodel" | "tflite"
    notes: list[str]

    @property
    def input_shape(self) -> tuple[int | None, ...]: ...  # read from the model, never set

    @property
    def outputs(self) -> list[OutputInfo]: ...  # names and shapes, in the model's order

    def predict(self, x: np.ndarray) -> np.ndarray: ...

    def predict_all(self, x: np.ndarray) -> list[np.ndarray]: ...


def _single(predictor: Predictor, x: np.ndarray) -> np.ndarray:
    outputs = predictor.predict_all(x)
    if len(outputs) != 1:
        raise UserError(
            f"{predictor.label!r} has {len(outputs)} outputs; this needs a model with one output"
        )
    return outputs[0]


@dataclass
class KerasPredictor:
    model: Any
    label: str
    kind: str = "keras"
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        require_graph(self.model, self.label, "evaluation")
        if len(self.model.inputs) != 1:
            raise UserError(
                f"{self.label!r} has {len(self.model.inputs)} inputs; evaluation needs one input"
            )

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        return tuple(self.model.inputs[0].shape)

    @property
    def outputs(self) -> list[OutputInfo]:
        return keras_outputs(self.model)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return _single(self, x)

    def predict_all(self, x: np.ndarray) -> list[np.ndarray]:
        with quiet():
            outputs = self.model.predict(x, batch_size=256, verbose=0)
        if isinstance(outputs, dict):
            outputs = [outputs[o.name] for o in self.outputs]
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        return [np.asarray(o, dtype=np.float32) for o in outputs]


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
            raise UserError(
                f"{self.label!r} cannot be loaded as a SavedModel: {_first_line(exc)}"
            ) from None
        signature = getattr(self._loaded, "signatures", {}).get("serving_default")
        if signature is None:
            raise UserError(f"{self.label!r} has no 'serving_default' signature to run")
        inputs = signature.structured_input_signature[1]
        if len(inputs) != 1:
            raise UserError(f"{self.label!r} has {len(inputs)} inputs; evaluation needs one input")
        self._signature = signature
        self._input_name, spec = next(iter(inputs.items()))
        self._input_shape = tuple(spec.shape.as_list())
        self._dtype = spec.dtype
        structured = signature.structured_outputs
        self._output_names = _keras_order(list(structured))
        self._outputs = [
            OutputInfo(name, (None, *tuple(structured[name].shape.as_list())[1:]))
            for name in self._output_names
        ]

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        return self._input_shape

    @property
    def outputs(self) -> list[OutputInfo]:
        return list(self._outputs)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return _single(self, x)

    def predict_all(self, x: np.ndarray) -> list[np.ndarray]:
        tf = _tf.tf()
        parts: list[list[np.ndarray]] = [[] for _ in self._output_names]
        for start in range(0, len(x), 256):
            batch = tf.constant(x[start : start + 256], dtype=self._dtype)
            result = self._signature(**{self._input_name: batch})
            for i, name in enumerate(self._output_names):
                parts[i].append(result[name].numpy())
        return [np.concatenate(p).astype(np.float32, copy=False) for p in parts]


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
        if len(self.runner.inputs) != 1:
            raise UserError(
                f"{self.label!r} has {len(self.runner.inputs)} inputs; evaluation needs one input"
            )
        self._order, names = self._signature_order()
        self._outputs = [
            OutputInfo(names[i], (None, *self.runner.outputs[pos].shape[1:]))
            for i, pos in enumerate(self._order)
        ]

    def _signature_order(self) -> tuple[list[int], list[str]]:
        """Positions in `runner.outputs` in the Keras model's order, and the outputs' names."""
        specs = self.runner.outputs
        fallback = list(range(len(specs))), [s.name for s in specs]
        try:
            interpreter = self.runner._interpreter
            signatures = interpreter.get_signature_list()
            if len(signatures) != 1:
                return fallback
            key = next(iter(signatures))
            details = interpreter.get_signature_runner(key).get_output_details()
        except (AttributeError, ValueError, RuntimeError, KeyError):
            return fallback
        by_index = {s.index: pos for pos, s in enumerate(specs)}
        if sorted(by_index) != sorted(d["index"] for d in details.values()):
            return fallback
        names = _keras_order(list(details))
        return [by_index[details[n]["index"]] for n in names], names

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        signature = self.runner.inputs[0].shape_signature
        return tuple(None if d < 0 else d for d in signature)

    @property
    def outputs(self) -> list[OutputInfo]:
        return list(self._outputs)

    @property
    def runtime(self) -> dict[str, Any]:
        return {
            "name": "ai-edge-litert",
            "version": runtime_version(),
            "delegate": self.runner.delegate,
            "batched": self.runner.batch_resizable,
        }

    def predict(self, x: np.ndarray) -> np.ndarray:
        if len(self.runner.outputs) == 1:
            return self.runner.predict(x, batch_size=self.batch_size)
        return _single(self, x)

    def predict_all(self, x: np.ndarray) -> list[np.ndarray]:
        if len(self.runner.outputs) == 1:
            return [self.runner.predict(x, batch_size=self.batch_size)]
        if len(x) == 0:
            raise UserError("no samples to run")
        runner = self.runner
        step = max(1, min(self.batch_size, len(x))) if runner.batch_resizable else runner._batch
        parts: list[list[np.ndarray]] = [[] for _ in runner.outputs]
        for start in range(0, len(x), step):
            chunk = x[start : start + step]
            count = len(chunk)
            if count < step:  # pad the last batch so the graph is not resized again
                pad = np.zeros((step - count, *chunk.shape[1:]), dtype=chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            for i, result in enumerate(runner.run(chunk)):
                parts[i].append(result[:count])
        merged = [np.concatenate(p).astype(np.float32, copy=False) for p in parts]
        return [merged[pos] for pos in self._order]


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


def _keras_order(names: list[str]) -> list[str]:
    """Signature output names in the model's order: `output_<i>` by i, other names as given."""
    if names and all(_POSITIONAL.match(n) for n in names):
        return sorted(names, key=lambda n: int(_POSITIONAL.match(n).group(1)))  # type: ignore[union-attr]
    return names


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
