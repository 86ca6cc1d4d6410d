"""Rebuild a smaller Keras model: same graph, same layer names and configs, fewer filters.

Each layer is re-created from its own config (filter counts changed where channels go) and
called the way the original was, so the result is a plain Functional/Sequential model that
loads with `keras.models.load_model` alone. Weights are copied with the removed channels
sliced out of every kernel, bias and per-channel vector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeprune import _tf
from edgeprune.channels.graph import ChannelGraph, _graph_of, _is_graph_model, _is_sequential
from edgeprune.channels.graph import _nodes_in_order as nodes_in_order
from edgeprune.channels.rule_table import rule_for
from edgeprune.channels.rules import layer_weights
from edgeprune.errors import UserError


@dataclass
class _Rebuild:
    graph: ChannelGraph
    keep_id: np.ndarray  # bool per channel id
    new_ops: dict[int, Any] = field(default_factory=dict)
    pending_weights: list[tuple[Any, Any, list[Any], list[Any]]] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)


def rebuild_model(graph: ChannelGraph, keep_id: np.ndarray) -> tuple[Any, list[str]]:
    """The pruned model for `graph` keeping the channel ids where `keep_id` is True.

    Returns the model and the names of layers that could not be re-created from their config
    and are shared with the original model instead.
    """
    state = _Rebuild(graph, keep_id)
    model = graph.model
    input_masks = [None] * len(_graph_of(model).inputs)
    new_model = _rebuild_graph_model(state, model, input_masks)
    for old, new, in_masks, out_masks in state.pending_weights:
        _copy_weights(old, new, in_masks, out_masks)
    return new_model, state.reused


def _masks(state: _Rebuild, operation: Any) -> tuple[list[Any], list[Any]]:
    calls = state.graph.calls.get(id(operation), [])
    if not calls:
        return [], []
    call = calls[0]
    keep = state.keep_id
    in_masks = [None if s is None else keep[s] for s in call.in_slots]
    out_masks = [None if s is None else keep[s] for s in call.out_slots or []]
    return in_masks, out_masks


def _changed(masks: list[Any]) -> bool:
    return any(m is not None and not bool(np.all(m)) for m in masks)


def _rebuild_graph_model(state: _Rebuild, model: Any, input_masks: list[Any]) -> Any:
    keras = _tf.keras()
    graph_model = _graph_of(model)
    new_inputs = []
    for tensor, mask in zip(graph_model.inputs, input_masks, strict=True):
        shape = list(tensor.shape)
        if mask is not None:
            shape[-1] = int(np.count_nonzero(mask))
        layer = tensor._keras_history[0]
        new_inputs.append(
            keras.Input(batch_shape=tuple(shape), dtype=tensor.dtype, name=layer.name)
        )
    if _is_sequential(model):
        layers = [_new_operation(state, layer) for layer in model.layers]
        return keras.Sequential(
            [new_inputs[0], *layers], name=model.name, trainable=model.trainable
        )
    tensors: dict[int, Any] = {
        id(t): n for t, n in zip(graph_model.inputs, new_inputs, strict=True)
    }
    for node in nodes_in_order(graph_model):
        if any(id(t) not in tensors for t in node.input_tensors):
            continue
        args, kwargs = node.arguments.fill_in(tensors)
        outputs = _new_operation(state, node.operation)(*args, **kwargs)
        for old, new in zip(node.outputs, keras.tree.flatten(outputs), strict=True):
            tensors[id(old)] = new
    outputs = [tensors[id(t)] for t in graph_model.outputs]
    inputs_struct = getattr(graph_model, "_inputs_struct", new_inputs)
    outputs_struct = getattr(graph_model, "_outputs_struct", outputs)
    return keras.Model(
        keras.tree.pack_sequence_as(inputs_struct, new_inputs),
        keras.tree.pack_sequence_as(outputs_struct, outputs),
        name=model.name,
        trainable=model.trainable,
    )


def _new_operation(state: _Rebuild, operation: Any) -> Any:
    """The rebuilt counterpart of one layer, nested model or op (made once, reused if shared)."""
    key = id(operation)
    if key in state.new_ops:
        return state.new_ops[key]
    in_masks, out_masks = _masks(state, operation)
    keras = _tf.keras()
    if _is_graph_model(operation):
        new = _rebuild_graph_model(state, operation, in_masks)
    elif not isinstance(operation, keras.layers.Layer):
        new = _new_stateless_op(operation)
    else:
        new = _new_layer(state, operation, in_masks, out_masks)
    state.new_ops[key] = new
    return new


def _new_stateless_op(operation: Any) -> Any:
    """A fresh copy of an op such as `x + 3.0`, so the original graph gains no nodes."""
    try:
        return type(operation).from_config(operation.get_config())
    except Exception:  # an op without a round-tripping config has no state either
        return operation


def _new_layer(state: _Rebuild, layer: Any, in_masks: list[Any], out_masks: list[Any]) -> Any:
    config = layer.get_config()
    changed = _changed(in_masks) or _changed(out_masks)
    if changed:
        rule = rule_for(layer)
        if rule is None:  # the tracer fixes every channel an unknown layer touches
            raise AssertionError(f"{layer.name}: channels changed on a layer without a rule")
        config = rule.new_config(config, in_masks, out_masks)
    try:
        new = type(layer).from_config(config)
    except Exception as exc:  # a custom layer whose config does not round-trip
        if changed:
            raise UserError(
                f"layer {layer.name!r} ({type(layer).__name__}) cannot be re-created from its "
                f"config ({type(exc).__name__}); add a get_config/from_config or `exclude` it",
                params=("exclude",),
            ) from None
        state.reused.append(layer.name)
        return layer
    state.pending_weights.append((layer, new, in_masks, out_masks))
    return new


def _copy_weights(old: Any, new: Any, in_masks: list[Any], out_masks: list[Any]) -> None:
    if not old.weights:
        return
    if _changed(in_masks) or _changed(out_masks):
        rule = rule_for(old)
        assert rule is not None
        sliced = rule.new_weights(layer_weights(old), in_masks, out_masks)
        values = list(sliced.values())
    else:
        values = old.get_weights()
    new.set_weights(values)
