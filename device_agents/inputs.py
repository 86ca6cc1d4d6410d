"""Benchmark inputs (seeded random, or shipped .npy/.npz) and the digest of the outputs.

Random inputs are reproducible: each input gets its own generator seeded from the job's seed,
its dtype and its shape, so the same model and seed give the same tensors on every board.
A shipped file gives real samples; then each sample's top-1 class and a digest of all
outputs go back to the host for on-device accuracy and host/device parity.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from typing import Any, Dict, List, Sequence

import numpy as np

from .file_kinds import inputs_suffix

Sample = List[np.ndarray]  # one array per model input, each shaped exactly like the input


class InputsError(ValueError):
    """The inputs do not fit the model; the message names the input, shapes and dtypes."""


def _seed_for(seed: int, dtype: Any, shape: Sequence[int]) -> int:
    text = f"{seed}:{np.dtype(dtype).name}:{','.join(str(int(d)) for d in shape)}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def random_array(seed: int, dtype: Any, shape: Sequence[int]) -> np.ndarray:
    """Floats in [-1, 1), integers over a small or the full range, bools half true."""
    dtype = np.dtype(dtype)
    shape = tuple(int(d) for d in shape)
    rng = np.random.default_rng(_seed_for(seed, dtype, shape))
    if dtype.kind == "f":
        return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)
    if dtype == np.int8 or dtype == np.uint8:
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max + 1, size=shape, dtype=dtype)
    if dtype.kind in "iu":
        # Wider integers are usually indices or lengths: keep them small and valid.
        return rng.integers(0, 10, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.random(size=shape) < 0.5
    raise InputsError(f"cannot make random inputs of dtype {dtype.name}; ship a .npy/.npz")


def random_sample(input_details: List[Dict[str, Any]], seed: int) -> Sample:
    return [random_array(seed, d["dtype"], d["shape"]) for d in input_details]


def load_samples(path: str, input_details: List[Dict[str, Any]]) -> List[Sample]:
    """Split a shipped .npy/.npz into samples that fit the model's inputs exactly."""
    arrays = _load_arrays(path, input_details)
    per_input = [
        _split(array, detail, key)
        for (key, array), detail in zip(arrays, input_details)  # noqa: B905 (3.8)
    ]
    counts = {len(batches) for batches in per_input}
    if len(counts) != 1:
        raise InputsError(
            "inputs disagree on the number of samples: "
            + ", ".join(f"{key}: {len(b)}" for (key, _), b in zip(arrays, per_input))  # noqa: B905
        )
    return [list(sample) for sample in zip(*per_input)]  # noqa: B905 (lengths checked above)


def _check_kind(path: str) -> None:
    if not os.path.isfile(path):
        raise InputsError("the inputs file does not exist")
    if inputs_suffix(path) is None:
        raise InputsError("the inputs file is neither a .npy nor a .npz (wrong magic bytes)")


def _load_arrays(path: str, input_details: List[Dict[str, Any]]) -> List[Any]:
    _check_kind(path)
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "pickle" in str(exc).lower():
            raise InputsError(
                "the inputs file holds Python objects (pickled); ship plain numeric arrays"
            ) from None
        raise InputsError(f"the inputs file is not a readable .npy/.npz: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputsError(f"the inputs file is not a readable .npy/.npz: {exc}") from None
    if isinstance(loaded, np.ndarray):
        if len(input_details) != 1:
            raise InputsError(
                f"a .npy holds one array but the model has {len(input_details)} inputs; "
                "ship a .npz with one array per input name"
            )
        return [("the .npy array", loaded)]
    with loaded:
        try:
            names = list(loaded.files)
            return [(key, loaded[key]) for key in _npz_keys(names, input_details)]
        except InputsError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            if "pickle" in str(exc).lower():
                raise InputsError(
                    "the inputs file holds Python objects (pickled); ship plain numeric arrays"
                ) from None
            raise InputsError(f"the inputs .npz cannot be read: {exc}") from None


def _npz_keys(names: List[str], input_details: List[Dict[str, Any]]) -> List[str]:
    """Single input: 'x' or the only array. Several: each input's name, or input_<i>/arr_<i>."""
    if not names:
        raise InputsError("the inputs .npz holds no arrays")
    if len(input_details) == 1:
        if "x" in names:
            return ["x"]
        if len(names) == 1:
            return names
        name = input_details[0]["name"]
        if name in names:
            return [name]
        raise InputsError(
            f"the inputs .npz holds {', '.join(sorted(names))}; name the model's input 'x'"
        )
    keys = []
    for index, detail in enumerate(input_details):
        for candidate in (detail["name"], f"input_{index}", f"arr_{index}"):
            if candidate in names:
                keys.append(candidate)
                break
        else:
            raise InputsError(
                f"the inputs .npz has no array for model input {index} ({detail['name']!r}); "
                f"it holds {', '.join(sorted(names))}"
            )
    return keys


def _split(array: Any, detail: Dict[str, Any], key: str) -> List[np.ndarray]:
    """(N*b, ...) or exactly the input's shape -> N arrays shaped like the input."""
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        raise InputsError(f"inputs array {key} is not a numeric array")
    shape = tuple(int(d) for d in detail["shape"])
    want = np.dtype(detail["dtype"])
    if array.dtype != want:
        raise InputsError(
            f"inputs array {key} has dtype {array.dtype.name} but model input "
            f"{detail['name']!r} takes {want.name}; convert it (e.g. x.astype(np.{want.name}))"
        )
    batch = shape[0] if shape else 1
    if array.shape == shape:
        return [np.ascontiguousarray(array)]
    if shape and batch == 1 and array.shape == shape[1:]:
        return [np.ascontiguousarray(array.reshape(shape))]
    if (
        shape
        and array.ndim == len(shape)
        and array.shape[1:] == shape[1:]
        and batch > 0
        and array.shape[0] % batch == 0
        and array.shape[0] > 0
    ):
        return [np.ascontiguousarray(array[i : i + batch]) for i in range(0, array.shape[0], batch)]
    raise InputsError(
        f"inputs array {key} has shape {tuple(array.shape)} but model input "
        f"{detail['name']!r} takes {shape} (N samples stacked on the first axis)"
    )


class OutputRecorder:
    """Top-1 of the first output per sample row, and a sha256 over every output in order."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.digest = hashlib.sha256()
        self.top1: List[int] = []
        self.samples = 0
        self.shapes: List[List[int]] = []
        self.dtypes: List[str] = []

    def add(self, outputs: List[np.ndarray]) -> None:
        if not self.shapes:
            self.shapes = [list(o.shape) for o in outputs]
            self.dtypes = [o.dtype.name for o in outputs]
        for output in outputs:
            self.digest.update(np.ascontiguousarray(output).tobytes())
        first = outputs[0]
        rows = first.reshape(first.shape[0], -1) if first.ndim > 1 else first.reshape(1, -1)
        if rows.shape[1] > 0:
            self.top1.extend(int(i) for i in rows.argmax(axis=1))
        self.samples += 1

    def to_dict(self) -> Dict[str, Any]:
        return {
            "source": self.source,
            "samples": self.samples,
            "top1": self.top1,
            "digest": "sha256:" + self.digest.hexdigest(),
            "shapes": self.shapes,
            "dtypes": self.dtypes,
        }
