"""What a model's outputs are, before any work, and the run's task from its TaskFields.

Stages call `resolve_task(data, keras_outputs(model), options)` once, up front, so a task
that does not fit the data fails in one line before training or converting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from edgeprune.tasks.base import OutputInfo, Task
from edgeprune.tasks.options import TaskFields
from edgeprune.tasks.registry import infer_task

if TYPE_CHECKING:
    from edgeprune.data import Dataset

CUSTOM_SETTINGS = ("decides", "higher_is_better", "unit")
"""What a recipe may say about a custom task's metrics, besides its function."""


def keras_outputs(model: Any, sample: Any = None) -> list[OutputInfo]:
    """Names and shapes (batch first) of a Keras model's outputs, in the model's order.

    A subclassed model has no output tensors to read; then `sample` (a batch of inputs)
    is run once and the outputs' shapes are read from the result.
    """
    tensors = list(getattr(model, "outputs", None) or [])
    names = list(getattr(model, "output_names", None) or [])
    if not tensors and sample is not None:
        result = model(sample[:1], training=False)
        if isinstance(result, Mapping):
            return [OutputInfo(str(k), (None, *tuple(v.shape)[1:])) for k, v in result.items()]
        arrays = list(result) if isinstance(result, (list, tuple)) else [result]
        return [
            OutputInfo(names[i] if i < len(names) else f"output_{i}", (None, *tuple(a.shape)[1:]))
            for i, a in enumerate(arrays)
        ]
    infos = []
    for i, tensor in enumerate(tensors):
        name = names[i] if i < len(names) else _tensor_name(tensor, i)
        shape = tuple(None if d is None else int(d) for d in tensor.shape)
        infos.append(OutputInfo(str(name), shape))
    return infos


def resolve_task(
    data: Dataset,
    outputs: Sequence[OutputInfo],
    fields: TaskFields | Mapping[str, Any] | None = None,
    model_name: str = "the model",
) -> Task:
    """The run's task: `fields.task` if given (checked against data and outputs), else inferred.

    A mapping may also carry a custom task's `decides`, `higher_is_better` and `unit`
    (a recipe's `metric:` and its direction).
    """
    if fields is None:
        values: dict[str, Any] = {}
    elif isinstance(fields, Mapping):
        values = dict(fields)
    else:
        values = {
            "task": fields.task,
            "metric": fields.metric,
            "decode": fields.decode,
        }
    return infer_task(
        data,
        outputs,
        values.get("task"),
        model_name=model_name,
        metric=values.get("metric"),
        decode=values.get("decode"),
        **{key: values.get(key) for key in CUSTOM_SETTINGS},
    )


def _tensor_name(tensor: Any, index: int) -> str:
    history = getattr(tensor, "_keras_history", None)
    operation = getattr(history, "operation", None)
    name = getattr(operation, "name", None)
    return str(name) if name else f"output_{index}"


def output_layer(model: Any, index: int = 0) -> Any | None:
    """The layer that makes output `index`, looking inside nested models; None if unknown."""
    outputs = getattr(model, "outputs", None)
    if not outputs or index >= len(outputs):
        return None
    history = getattr(outputs[index], "_keras_history", None)
    operation = getattr(history, "operation", None)
    if operation is not None and getattr(operation, "outputs", None):
        return output_layer(operation, getattr(history, "tensor_index", 0) or 0)
    return operation


def activation_name(layer: Any) -> str:
    """The final activation of `layer`: "softmax", "sigmoid", "linear" (none), ..."""
    if type(layer).__name__ == "Softmax":
        return "softmax"
    activation = getattr(layer, "activation", None)
    if activation is None:
        return "linear"
    return str(getattr(activation, "__name__", activation))
