"""Run a `.tflite` model on the host with ai-edge-litert, inputs and outputs in real units.

`TFLiteRunner` hides what every caller would otherwise get wrong: quantizing float inputs
for int8 models and dequantizing their outputs, resizing the batch dimension when the
model allows it (one invoke per batch instead of per sample), and turning runtime failures
into one-line errors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune._tf import quiet_native_output as quiet
from edgeprune.errors import NotAModelError, UserError
from edgeprune.tflite.flatbuffer import TFLiteModel, read_model


class ModelRunError(UserError):
    """The runtime refused the model (e.g. a delegate could not prepare an op)."""


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output as the interpreter sees it."""

    name: str
    index: int
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]
    dtype: np.dtype
    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0 and np.issubdtype(self.dtype, np.integer)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape_signature or self.shape),
            "dtype": self.dtype.name,
            "quantization": {"scale": self.scale, "zero_point": self.zero_point}
            if self.quantized
            else None,
        }


def runtime_version() -> str:
    try:
        return metadata.version("ai-edge-litert")
    except metadata.PackageNotFoundError:  # pragma: no cover - a dependency
        return "unknown"


class TFLiteRunner:
    """One .tflite model loaded in `ai_edge_litert.interpreter.Interpreter`."""

    def __init__(
        self,
        model: str | os.PathLike[str] | bytes,
        *,
        num_threads: int | None = None,
        use_xnnpack: bool = True,
        label: str | None = None,
    ) -> None:
        if isinstance(model, (bytes, bytearray)):
            self.content = bytes(model)
            self.label = label or "model"
        else:
            self.label = label or str(model)
            try:
                self.content = Path(model).read_bytes()
            except OSError as exc:
                raise UserError(f"{self.label!r} cannot be read: {exc.strerror}") from None
        # Validate the structure first: the native runtime trusts the bytes it is given.
        self.model: TFLiteModel = read_model(self.content, name=self.label)
        self.num_threads = num_threads
        self.use_xnnpack = use_xnnpack
        self._batch_resizable = True
        self._interpreter = self._create()
        self.inputs = [self._spec(d) for d in self._interpreter.get_input_details()]
        self.outputs = [self._spec(d) for d in self._interpreter.get_output_details()]
        self._batch = self.inputs[0].shape[0] if self.inputs and self.inputs[0].shape else 1

    @property
    def delegate(self) -> str:
        return "xnnpack" if self.use_xnnpack else "builtin"

    @property
    def batch_resizable(self) -> bool:
        """True when every input has a dynamic (-1) batch dimension and resizing worked."""
        return self._batch_resizable and all(
            len(s.shape_signature) > 0 and s.shape_signature[0] == -1 for s in self.inputs
        )

    def _create(self) -> Any:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = (
            OpResolverType.AUTO
            if self.use_xnnpack
            else (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        )
        try:
            with quiet():
                interpreter = Interpreter(
                    model_content=self.content,
                    num_threads=self.num_threads,
                    experimental_op_resolver_type=resolver,
                )
        except (ValueError, RuntimeError) as exc:
            raise NotAModelError(
                f"{self.label!r} is not loadable by ai-edge-litert {runtime_version()}: "
                f"{_first_line(exc)}"
            ) from None
        self._allocate(interpreter)
        return interpreter

    def _allocate(self, interpreter: Any) -> None:
        try:
            with quiet():
                interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelRunError(
                f"{self.label!r} does not run in ai-edge-litert {runtime_version()} "
                f"({self.delegate} kernels): {_first_line(exc)}"
            ) from None

    @staticmethod
    def _spec(detail: dict[str, Any]) -> TensorSpec:
        scale, zero_point = detail.get("quantization", (0.0, 0))
        return TensorSpec(
            name=detail["name"],
            index=int(detail["index"]),
            shape=tuple(int(d) for d in detail["shape"]),
            shape_signature=tuple(int(d) for d in detail.get("shape_signature", detail["shape"])),
            dtype=np.dtype(detail["dtype"]),
            scale=float(scale),
            zero_point=int(zero_point),
        )

    def _set_batch(self, batch: int) -> bool:
        """Resize every input's batch dimension; False (and back to the original) if it fails."""
        if batch == self._batch:
            return True
        if not self.batch_resizable:
            return False
        try:
            for spec in self.inputs:
                self._interpreter.resize_tensor_input(spec.index, [batch, *spec.shape[1:]])
            with quiet():
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError):
            self._batch_resizable = False
            self._interpreter = self._create()
            self._batch = self.inputs[0].shape[0]
            return False
        self._batch = batch
        return True

    def run(self, *arrays: np.ndarray, dequantize: bool = True) -> list[np.ndarray]:
        """One batch through the graph; float arrays are quantized for integer inputs."""
        if len(arrays) != len(self.inputs):
            raise UserError(f"{self.label!r} takes {len(self.inputs)} input(s), got {len(arrays)}")
        batch = len(arrays[0]) if arrays[0].ndim else 1
        if not self._set_batch(batch):
            if self._batch != 1:
                raise UserError(
                    f"{self.label!r} has a fixed batch of {self._batch}; give exactly that many samples"
                )
            rows = [
                self.run(*(a[i : i + 1] for a in arrays), dequantize=dequantize)
                for i in range(batch)
            ]
            return [np.concatenate(parts) for parts in zip(*rows, strict=True)]
        for spec, array in zip(self.inputs, arrays, strict=True):
            expected = (batch, *spec.shape[1:])
            if tuple(array.shape) != expected:
                raise UserError(
                    f"{self.label!r} input {spec.name!r} expects shape {expected}, got {tuple(array.shape)}"
                )
            self._interpreter.set_tensor(spec.index, quantize_input(array, spec))
        try:
            self._interpreter.invoke()
        except (ValueError, RuntimeError) as exc:
            raise ModelRunError(f"{self.label!r} failed to run: {_first_line(exc)}") from None
        results = [np.array(self._interpreter.get_tensor(s.index)) for s in self.outputs]
        if dequantize:
            results = [dequantize_output(r, s) for r, s in zip(results, self.outputs, strict=True)]
        return results

    def predict(self, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Outputs of a one-input, one-output model for many samples, in float32."""
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            raise UserError(
                f"{self.label!r} has {len(self.inputs)} inputs and {len(self.outputs)} outputs; "
                "evaluation needs a model with one of each"
            )
        if len(x) == 0:
            raise UserError("no samples to run")
        step = max(1, min(batch_size, len(x))) if self.batch_resizable else self._batch
        parts = []
        for start in range(0, len(x), step):
            chunk = x[start : start + step]
            if len(chunk) < step:  # pad the last batch so the graph is not resized again
                pad = np.zeros((step - len(chunk), *chunk.shape[1:]), dtype=chunk.dtype)
                parts.append(self.run(np.concatenate([chunk, pad]))[0][: len(chunk)])
            else:
                parts.append(self.run(chunk)[0])
        return np.concatenate(parts).astype(np.float32, copy=False)


def quantize_input(array: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Real values -> the input's dtype: q = round(x / scale) + zero_point, clipped."""
    if spec.quantized and np.issubdtype(array.dtype, np.floating):
        info = np.iinfo(spec.dtype)
        q = np.round(array / spec.scale) + spec.zero_point
        return np.clip(q, info.min, info.max).astype(spec.dtype)
    return np.ascontiguousarray(array, dtype=spec.dtype)


def dequantize_output(array: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """An integer output back to real values: (q - zero_point) * scale."""
    if spec.quantized:
        return ((array.astype(np.float32) - spec.zero_point) * spec.scale).astype(np.float32)
    return array


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
