"""What the lookup table is indexed by: one signature per layer call, at given widths.

A signature is the layer's class, its config (filters/units as pruned) and its input
shapes: two layers with the same signature cost the same on a board, whatever model they
sit in. Signatures come straight from the traced channel graph and a keep mask over its
channel ids, so the latency of a proposal is predicted without building the proposal.
Layers that TFLite fuses into the op before them (BN, activations) or that cost nothing
(Flatten, Dropout) get no signature; their share lands in the table's measured offset.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeprune.channels.graph import ChannelGraph, _is_graph_model
from edgeprune.channels.rule_table import rule_for

FUSED_OR_FREE = frozenset(
    {
        "BatchNormalization",
        "ReLU",
        "Activation",
        "Dropout",
        "Flatten",
        "Reshape",
        "InputLayer",
        "Identity",
        "SpatialDropout2D",
        "GaussianNoise",
    }
)
_VOLATILE_CONFIG = frozenset({"name", "trainable", "dtype", "dtype_policy"})


@dataclass(frozen=True)
class LayerSignature:
    """One layer call as the table knows it; `key` is its sha256 (the table's index)."""

    path: str
    class_name: str
    config: dict[str, Any]
    input_shapes: tuple[tuple[int, ...], ...]
    layer_class: type = field(compare=False, repr=False, default=object)

    @property
    def key(self) -> str:
        text = json.dumps(
            {
                "class": self.class_name,
                "config": {k: v for k, v in self.config.items() if k not in _VOLATILE_CONFIG},
                "inputs": self.input_shapes,
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(text.encode()).hexdigest()


def layer_signatures(graph: ChannelGraph, keep_id: np.ndarray) -> list[LayerSignature]:
    """The signature of every measured layer call of `graph`, keeping the ids in `keep_id`."""
    signatures = []
    for calls in graph.calls.values():
        for call in calls:
            signature = _signature(call, keep_id)
            if signature is not None:
                signatures.append(signature)
    return signatures


def _signature(call: Any, keep_id: np.ndarray) -> LayerSignature | None:
    layer = call.layer
    class_name = type(layer).__name__
    if class_name in FUSED_OR_FREE or _is_graph_model(layer) or not hasattr(layer, "get_config"):
        return None
    if not _is_keras_layer(layer):
        return None
    if class_name == "Activation" or any(s is None or None in s[1:] for s in call.in_shapes):
        return None
    in_masks = [None if s is None else keep_id[s] for s in call.in_slots]
    out_masks = [None if s is None else keep_id[s] for s in call.out_slots or []]
    config = layer.get_config()
    if _changed(in_masks) or _changed(out_masks):
        rule = rule_for(layer)
        if rule is None:
            return None
        config = rule.new_config(config, in_masks, out_masks)
    shapes = []
    for shape, mask in zip(call.in_shapes, in_masks, strict=True):
        dims = [int(d) for d in shape[1:]]
        if mask is not None and dims:
            dims[-1] = int(np.count_nonzero(mask))
        shapes.append((1, *dims))
    return LayerSignature(call.path, class_name, _plain(config), tuple(shapes), type(layer))


def _changed(masks: list[Any]) -> bool:
    return any(m is not None and not bool(np.all(m)) for m in masks)


def _is_keras_layer(layer: Any) -> bool:
    from edgeprune import _tf

    return isinstance(layer, _tf.keras().layers.Layer)


def _plain(config: dict[str, Any]) -> dict[str, Any]:
    """The config as JSON would give it back (tuples as lists), so keys are stable."""
    return dict(json.loads(json.dumps(config, default=str)))


def overhead_signature() -> LayerSignature:
    """A one-element ReLU: what any one-layer model costs beyond its layer (the invoke)."""
    from edgeprune import _tf

    relu = _tf.keras().layers.ReLU
    return LayerSignature("(invoke overhead)", "ReLU", _plain(relu().get_config()), ((1, 1),), relu)


def build_layer_model(signature: LayerSignature) -> Any:
    """A Keras model of this one layer at the signature's shapes (random weights)."""
    from edgeprune import _tf

    keras = _tf.keras()
    inputs = [
        keras.Input(batch_shape=shape, name=f"in{i}")
        for i, shape in enumerate(signature.input_shapes)
    ]
    config = {**signature.config, "name": "layer"}
    layer_class: Any = signature.layer_class
    layer = layer_class.from_config(config)
    outputs = layer(inputs[0] if len(inputs) == 1 else inputs)
    return keras.Model(inputs, outputs, name="table_entry")
