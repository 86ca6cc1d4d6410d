"""`edgeprune xnnpack-fix`: rewrite a stock Keras model so XNNPACK's sparse path can take it.

Keras' MobileNetV2/V3 and EfficientNet pad stride-2 convs asymmetrically
(`ZeroPadding2D(((0, 1), (0, 1)))` + 'valid', or `padding='same'`, which TFLite also pads
asymmetrically at stride 2); XNNPACK's sparse clusters need the same padding on every
side. The rewrite, with the same weights and the same output shapes:

- an asymmetric ZeroPadding2D read only by a stride-2 'valid' conv -> ZeroPadding2D(p);
- a stride-2 'same' conv -> ZeroPadding2D(p) + the conv with padding='valid';
- GlobalAveragePooling2D + Reshape((1, 1, C)) (EfficientNet's squeeze-and-excite) ->
  GlobalAveragePooling2D(keepdims=True), which drops a RESHAPE that would cut the cluster;

with p = (kernel - 1) // 2. Shifting the padding by one pixel moves the outputs a little
(reported); the fixed model is meant to be fine-tuned (`prune --policy xnnpack --data`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeprune import _tf
from edgeprune.xnnpack.keras_graph import class_name

_STRIDED = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D")


@dataclass
class Rewrite:
    layer: str
    change: str

    def to_dict(self) -> dict[str, str]:
        return {"layer": self.layer, "change": self.change}


@dataclass
class FixedModel:
    model: Any
    rewrites: list[Rewrite] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def fix_model(model: Any) -> FixedModel:
    """A new functional model with the rewrites above and the original weights."""
    result = FixedModel(model=None)
    result.model = _rebuild(model, result, top=True)
    return result


def _functional(model: Any) -> Any:
    return getattr(model, "_functional", None) or model


def _rebuild(model: Any, result: FixedModel, top: bool = False) -> Any:
    keras = _tf.keras()
    functional = _functional(model)
    if functional is not model and top:
        result.notes.append("the Sequential model was rebuilt as a functional model")
    tensors: dict[int, Any] = {}
    readers: dict[int, int] = {}
    nodes = [
        node
        for depth in sorted(functional._nodes_by_depth, reverse=True)
        for node in functional._nodes_by_depth[depth]
    ]
    for node in nodes:
        for tensor in node.input_tensors:
            readers[id(tensor)] = readers.get(id(tensor), 0) + 1
    consumers = {id(t): node for node in nodes for t in node.input_tensors if readers[id(t)] == 1}
    new_inputs = []
    for tensor in functional.inputs:
        history = tensor._keras_history.operation
        new = keras.Input(
            batch_shape=tensor.shape, dtype=tensor.dtype, name=history.name, sparse=False
        )
        tensors[id(tensor)] = new
        new_inputs.append(new)
    cloned: dict[int, Any] = {}
    for node in nodes:
        operation = node.operation
        if type(operation).__name__ == "InputLayer":
            continue
        args, kwargs = node.arguments.fill_in(tensors)
        outputs = _call(operation, node, args, kwargs, consumers, cloned, result)
        flat_new = _tf.keras().tree.flatten(outputs)
        for old, new in zip(node.output_tensors, flat_new, strict=True):
            tensors[id(old)] = new
    structure = getattr(functional, "_outputs_struct", functional.outputs)
    new_outputs = _tf.keras().tree.map_structure(lambda t: tensors[id(t)], structure)
    inputs_struct = getattr(functional, "_inputs_struct", new_inputs)
    new_in = _tf.keras().tree.map_structure(lambda t: tensors[id(t)], inputs_struct)
    return keras.Model(new_in, new_outputs, name=model.name)


def _call(
    operation: Any,
    node: Any,
    args: tuple,
    kwargs: dict,
    consumers: dict[int, Any],
    cloned: dict[int, Any],
    result: FixedModel,
) -> Any:
    keras = _tf.keras()
    if not isinstance(operation, keras.layers.Layer):
        return operation(*args, **kwargs)  # a Keras op such as `x + 3.0`: stateless
    if hasattr(operation, "_nodes_by_depth") or hasattr(operation, "_functional"):
        inner = cloned.get(id(operation)) or _rebuild(operation, result)
        cloned[id(operation)] = inner
        return inner(*args, **kwargs)
    kind = class_name(operation)
    config = operation.get_config()
    reader = consumers.get(id(node.output_tensors[0])) if node.output_tensors else None
    if kind == "ZeroPadding2D" and reader is not None:
        symmetric = _symmetric_padding(operation, reader)
        if symmetric is not None:
            config["padding"] = ((symmetric, symmetric), (symmetric, symmetric))
            result.rewrites.append(
                Rewrite(
                    operation.name,
                    f"padding {_pad_text(operation.padding)} -> {symmetric} on every side",
                )
            )
    if kind in _STRIDED and _same_strided(operation):
        pad = (int(operation.kernel_size[0]) - 1) // 2
        padded = keras.layers.ZeroPadding2D(pad, name=_unique_name(operation, "_xnnpad"))(args[0])
        args = (padded, *args[1:])
        config["padding"] = "valid"
        result.rewrites.append(
            Rewrite(operation.name, f"padding='same' -> ZeroPadding2D({pad}) + padding='valid'")
        )
    if kind == "GlobalAveragePooling2D" and reader is not None and _squeezed(operation, reader):
        config["keepdims"] = True
        result.rewrites.append(
            Rewrite(
                operation.name,
                f"keepdims=True, so the Reshape '{reader.operation.name}' after it drops out",
            )
        )
    if (
        kind == "Reshape"
        and consumers.get(id(node.input_tensors[0])) is node
        and _after_keepdims(node)
    ):
        return args[0]
    layer = cloned.get(id(operation))
    if layer is None:
        layer = type(operation).from_config(config)
        cloned[id(operation)] = layer
        outputs = layer(*args, **kwargs)
        if operation.weights:
            layer.set_weights(operation.get_weights())
        return outputs
    return layer(*args, **kwargs)


def _pad_text(padding: Any) -> str:
    (top, bottom), (left, right) = padding
    return f"(({top},{bottom}),({left},{right}))"


def _symmetric_padding(pad_layer: Any, reader: Any) -> int | None:
    """p when an asymmetric ZeroPadding2D feeds only a stride-2 'valid' conv and p keeps shapes."""
    (top, bottom), (left, right) = pad_layer.padding
    if top == bottom and left == right:
        return None
    conv = reader.operation
    if class_name(conv) not in _STRIDED or conv.padding != "valid":
        return None
    kernel = tuple(int(k) for k in conv.kernel_size)
    stride = tuple(int(s) for s in conv.strides)
    if kernel[0] != kernel[1] or kernel[0] % 2 == 0 or stride == (1, 1):
        return None
    target = (kernel[0] - 1) // 2
    shape = reader.input_tensors[0].shape
    height, width = shape[1] - top - bottom, shape[2] - left - right
    for size, before, step in ((height, top + bottom, stride[0]), (width, left + right, stride[1])):
        if (size + before - kernel[0]) // step != (size + 2 * target - kernel[0]) // step:
            return None  # the output size would change
    return target


def _same_strided(conv: Any) -> bool:
    kernel = tuple(int(k) for k in conv.kernel_size)
    return (
        conv.padding == "same"
        and tuple(int(s) for s in conv.strides) != (1, 1)
        and kernel[0] == kernel[1]
        and kernel[0] % 2 == 1
        and kernel[0] > 1
        and tuple(int(d) for d in conv.dilation_rate) == (1, 1)
    )


def _squeezed(pooling: Any, reader: Any) -> bool:
    """GlobalAveragePooling2D(keepdims=False) read only by a Reshape to (1, 1, C)."""
    if getattr(pooling, "keepdims", False) or class_name(reader.operation) != "Reshape":
        return False
    target = tuple(reader.operation.target_shape)
    return len(target) == 3 and target[:2] == (1, 1)


def _after_keepdims(node: Any) -> bool:
    """A Reshape to (1, 1, C) whose input is now already (None, 1, 1, C)."""
    source = node.input_tensors[0]
    history = getattr(source, "_keras_history", None)
    pooling = history.operation if history else None
    return (
        pooling is not None
        and class_name(pooling) == "GlobalAveragePooling2D"
        and not getattr(pooling, "keepdims", False)
        and _squeezed(pooling, node)
    )


def _unique_name(layer: Any, suffix: str) -> str:
    return f"{layer.name}{suffix}"


def output_change(before: Any, after: Any, inputs: np.ndarray) -> dict[str, Any]:
    """How much the outputs moved on `inputs`: max and mean |difference|, top-1 agreement.

    A model with several outputs (detection heads, a dict of outputs) is compared output by
    output: the totals are over all of them, `outputs` has each one by name.
    """
    # an eager call: `predict` would compile each model first, which costs more than it runs
    old = _named_outputs(before, before(_as_structure(before, inputs), training=False))
    new = _named_outputs(after, after(_as_structure(after, inputs), training=False))
    if [name for name, _ in old] != [name for name, _ in new]:
        raise ValueError("the fixed model's outputs differ from the original's")
    per_output: list[dict[str, Any]] = []
    for (name, a), (_, b) in zip(old, new, strict=True):
        diff = np.abs(a - b)
        scale = float(np.mean(np.abs(a))) or 1.0
        per_output.append(
            {
                "name": name,
                "max_abs": float(diff.max()),
                "mean_abs": float(diff.mean()),
                "relative": float(diff.mean()) / scale,
                "size": int(diff.size),
            }
        )
    total = sum(o["size"] for o in per_output) or 1
    mean_abs = sum(o["mean_abs"] * o["size"] for o in per_output) / total
    scale = sum(float(np.abs(a).sum()) for _, a in old) / total or 1.0
    change: dict[str, Any] = {
        "samples": len(inputs),
        "max_abs": max(o["max_abs"] for o in per_output),
        "mean_abs": mean_abs,
        "relative": mean_abs / scale,
        "top1_agreement": None,
    }
    if len(old) == 1:
        (_, first), (_, second) = old[0], new[0]
        if first.ndim == 2 and first.shape[1] > 1:
            change["top1_agreement"] = float(np.mean(first.argmax(1) == second.argmax(1)))
    else:
        change["outputs"] = [{k: v for k, v in o.items() if k != "size"} for o in per_output]
    return change


def _named_outputs(model: Any, values: Any) -> list[tuple[str, np.ndarray]]:
    """Each output array with its name: the dict key, else the output layer's name."""
    keras = _tf.keras()
    if isinstance(values, dict):
        return [(str(k), np.asarray(values[k], dtype=np.float64)) for k in sorted(values)]
    flat = keras.tree.flatten(values)
    names = [str(t._keras_history.operation.name) for t in _functional(model).outputs]
    if len(names) != len(flat):
        names = [f"output_{i}" for i in range(len(flat))]
    return [(n, np.asarray(v, dtype=np.float64)) for n, v in zip(names, flat, strict=True)]


def _as_structure(model: Any, inputs: np.ndarray) -> Any:
    """The one input array in the structure the model was built with ([x] or x)."""
    structure = getattr(_functional(model), "_inputs_struct", None)
    return [inputs] if isinstance(structure, list | tuple) else inputs
