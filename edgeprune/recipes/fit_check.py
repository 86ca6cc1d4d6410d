"""Does the recipe's data fit its model? Checked while planning, before anything trains.

A mismatch (samples of the wrong shape, more classes than outputs, integer inputs) would
otherwise surface minutes later as a long Keras traceback. Both sides are read cheaply:
the model from its `.keras` config (no weights built) or the recipe's `application` keys,
the data from headers and labels only. What cannot be told cheaply is not checked here;
the stages check it again when the model is real.
"""

from __future__ import annotations

import itertools
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.errors import UserError
from edgeprune.recipes.loader import Recipe

PASS_THROUGH = {
    "Activation",
    "Softmax",
    "Dropout",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "PReLU",
    "BatchNormalization",
    "LayerNormalization",
    "GaussianNoise",
    "GaussianDropout",
    "ActivityRegularization",
}
"""Layers whose output has as many units as their input: walked through to find the head."""


@dataclass(frozen=True)
class ModelFacts:
    input_shape: tuple[int | None, ...] | None  # one sample, batch axis left out
    input_dtype: str | None
    outputs: int | None


@dataclass(frozen=True)
class DataFacts:
    name: str
    sample_shape: tuple[int, ...]
    classes: int


def check_data_fits(recipe: Recipe) -> None:
    """Raise a one-line `UserError` at the recipe's `data` key when its data cannot feed the model."""
    if recipe.spec.data is None or recipe.spec.model.demo:
        return  # the demo model is built from the data
    model = model_facts(recipe)
    if model is None:
        return
    data = data_facts(recipe, model.input_shape)
    if data is None:
        return
    if recipe.decision.task not in (None, "classification"):
        data = DataFacts(data.name, data.sample_shape, 0)  # classes: the task checks its labels
    problem = mismatch(model, data)
    if problem:
        raise recipe.lines.error(("data",), problem)


def mismatch(model: ModelFacts, data: DataFacts) -> str | None:
    """What does not fit, in one sentence with its fix; None when everything does."""
    if model.input_dtype is not None and not np.issubdtype(
        np.dtype(model.input_dtype), np.floating
    ):
        return (
            f"the model takes {model.input_dtype} inputs but recipe data are float32 samples; "
            "use a model with a float input"
        )
    expected = model.input_shape
    if expected is not None:
        actual = data.sample_shape
        if len(expected) != len(actual) or any(
            e is not None and e != a for e, a in zip(expected, actual, strict=False)
        ):
            shown = tuple("?" if e is None else e for e in expected)
            return (
                f"dataset {data.name!r} has samples of shape {actual} but the model expects "
                f"{shown}; use data of that shape (image folders: set data.image_size)"
            )
    if model.outputs is not None:
        have = 2 if model.outputs == 1 else model.outputs
        if data.classes > have:
            return (
                f"dataset {data.name!r} has {data.classes} classes but the model outputs "
                f"{model.outputs}; use a model with {data.classes} outputs"
            )
    return None


# ------------------------------------------------------------------ the model side


def model_facts(recipe: Recipe) -> ModelFacts | None:
    spec = recipe.spec.model
    if spec.application:
        shape = tuple(spec.input_shape) if spec.input_shape else None
        include_top = spec.options.get("include_top", True)
        outputs = None
        if include_top is True:
            outputs = spec.classes if spec.classes is not None else 1000
        return ModelFacts(shape, None, outputs)
    if spec.file:
        path = recipe.resolve(spec.file)
        if path.is_file() and zipfile.is_zipfile(path):
            return keras_config_facts(path)
    return None


def keras_config_facts(path: Path) -> ModelFacts | None:
    """Input shape, dtype and output units from a `.keras` archive's config.json."""
    from edgeprune.models import MAX_CONFIG_BYTES

    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("config.json")
            if info.file_size > MAX_CONFIG_BYTES:
                return None
            config = json.loads(archive.read(info))
    except (KeyError, OSError, ValueError, zipfile.BadZipFile):
        return None  # loading it later says what is wrong
    body = config.get("config") if isinstance(config, dict) else None
    if not isinstance(body, dict):
        return None
    layers = body.get("layers")
    if not isinstance(layers, list) or not layers:
        return None
    try:
        return _facts(config["class_name"], body, layers)
    except (KeyError, TypeError, IndexError, ValueError):
        return None  # an unusual config: the base stage checks the built model


def _facts(kind: str, body: dict[str, Any], layers: list[dict[str, Any]]) -> ModelFacts | None:
    inputs = [layer for layer in layers if layer["class_name"] == "InputLayer"]
    if kind == "Functional" and len(_endpoints(body.get("input_layers"))) != 1:
        return None
    shape: tuple[int | None, ...] | None = None
    dtype: str | None = None
    if inputs:
        layer_config = inputs[0]["config"]
        batch_shape = layer_config.get("batch_shape") or layer_config.get("batch_input_shape")
        if batch_shape:
            shape = tuple(batch_shape[1:])
        raw = layer_config.get("dtype")
        dtype = raw if isinstance(raw, str) else None
    elif kind == "Sequential" and body.get("build_input_shape"):
        shape = tuple(body["build_input_shape"][1:])
    by_name = {layer.get("name") or layer["config"]["name"]: layer for layer in layers}
    if kind == "Sequential":
        order = [layer for layer in layers if layer["class_name"] != "InputLayer"]
        head = order[-1] if order else None
        previous = {id(b): a for a, b in itertools.pairwise(order)}
    else:
        outs = _endpoints(body.get("output_layers"))
        if len(outs) != 1:
            return ModelFacts(shape, dtype, None)
        head = by_name.get(outs[0])
        previous = {}
    outputs = None
    for _ in range(len(layers)):
        if head is None:
            break
        units = head["config"].get("units")
        if isinstance(units, int):
            outputs = units
            break
        if head["class_name"] not in PASS_THROUGH:
            break
        head = previous.get(id(head)) if kind == "Sequential" else _parent(head, by_name)
    return ModelFacts(shape, dtype, outputs)


def _endpoints(value: Any) -> list[str]:
    """Layer names of `input_layers`/`output_layers`: one `[name, 0, 0]` or a list of them."""
    if not isinstance(value, list) or not value:
        return []
    if isinstance(value[0], str):
        return [value[0]]
    return [item[0] for item in value]


def _parent(layer: dict[str, Any], by_name: dict[str, Any]) -> dict[str, Any] | None:
    nodes = layer.get("inbound_nodes") or []
    if len(nodes) != 1:
        return None
    args = nodes[0].get("args") or []
    if len(args) != 1 or not isinstance(args[0], dict):
        return None
    history = args[0].get("config", {}).get("keras_history")
    return by_name.get(history[0]) if history else None


# ------------------------------------------------------------------- the data side


def data_facts(recipe: Recipe, input_shape: tuple[int | None, ...] | None) -> DataFacts | None:
    """The train data's sample shape and class count, as the stages will load them."""
    spec = recipe.spec.data
    assert spec is not None
    value = recipe.dataset_spec(spec.train)
    if value == "digits":
        return DataFacts("digits", (8, 8, 1), 10)
    path = Path(value).expanduser()
    try:
        if path.is_dir():
            return _folder_facts(path, spec.image_size, input_shape)
        if path.is_file() and path.suffix == ".npz":
            return _npz_facts(path)
    except UserError as exc:
        raise recipe.lines.error(("data", "train"), str(exc)) from None
    return None  # the loader says what is wrong with it


def _npz_facts(path: Path) -> DataFacts | None:
    """Shape from the header of `x` (its samples are not read), classes from the labels."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "x.npy" not in names:
                return None
            with archive.open("x.npy") as handle:
                version = np.lib.format.read_magic(handle)
                read = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, _, _ = read(handle)
        with np.load(path, allow_pickle=False) as loaded:
            labels = [np.asarray(loaded[k]) for k in ("y", "y_val") if k in loaded.files]
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    classes = 0
    for y in labels:
        if not np.issubdtype(y.dtype, np.integer) and not (y.ndim == 2 and y.shape[1] > 1):
            continue  # float targets (regression) or masks of another kind: not class ids
        if y.ndim == 2 and y.shape[1] > 1:
            classes = max(classes, y.shape[1])
        elif y.size:
            classes = max(classes, int(np.max(y)) + 1)
    return DataFacts(path.stem, tuple(int(n) for n in shape[1:]), classes)


def _folder_facts(
    path: Path, image_size: list[int] | None, input_shape: tuple[int | None, ...] | None
) -> DataFacts | None:
    """Images are read as RGB, resized to data.image_size or else to the model's height x width."""
    classes = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if not classes:
        return None
    size: tuple[int, ...] | None = tuple(image_size) if image_size else None
    if size is None and input_shape and len(input_shape) == 3 and input_shape[0] and input_shape[1]:
        size = (int(input_shape[0]), int(input_shape[1]))
    if size is None:
        return None
    return DataFacts(path.name, (*size, 3), len(classes))
