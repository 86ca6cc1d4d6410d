"""What each Keras layer does to the channel (last) axis, and how its weights shrink with it.

A rule answers three questions for one layer type: which output channels exist after the
call (new filters, the input's channels, a concatenation, ...) and which channels it ties
together (`trace`); how its config changes when channels go (`new_config`); and how its
weights are sliced (`new_weights`). This module holds the base class and the rules for
layers without weights; `weighted_rules` has convolutions, Dense and BN; `rule_table` maps
Keras classes to rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from edgeprune.channels.graph import ChannelTracer

Slots = np.ndarray  # one channel id per position of a tensor's last axis
Masks = Sequence[np.ndarray | None]


# Activations that mix channels: removing one changes the others.
MIXING_ACTIVATIONS = frozenset({"softmax", "log_softmax"})


@dataclass
class LayerCall:
    """One call of one operation in the flattened graph, with its channel ids."""

    path: str
    layer: Any
    in_slots: list[Slots | None]
    in_shapes: list[tuple[int | None, ...]]
    out_shapes: list[tuple[int | None, ...]]
    args: tuple[Any, ...] = ()
    out_slots: list[Slots | None] | None = None


class NotApplicable(Exception):
    """Raised by `trace` when this call is outside what the rule handles (e.g. groups > 1)."""


class LayerRule:
    """Base: a layer whose channels pass straight through and which has no weights."""

    weight_names: frozenset[str] = frozenset()
    mixing_reason: str | None = None  # set on rules for known layers that mix channels

    def trace(self, tracer: ChannelTracer, call: LayerCall) -> list[Slots | None]:
        slots = single_input(call)
        if last_dim(call.out_shapes[0]) != len(slots):
            raise NotApplicable("output channel count differs from input")
        return [slots]

    def new_config(self, config: dict[str, Any], in_masks: Masks, out_masks: Masks) -> dict:
        return config

    def new_weights(
        self, weights: dict[str, np.ndarray], in_masks: Masks, out_masks: Masks
    ) -> dict[str, np.ndarray]:
        return weights


class PassThrough(LayerRule):
    """Activations, dropout, padding, pooling, upsampling: channel c in, channel c out."""


class SpatialRule(LayerRule):
    """Resizing, cropping and `ops.image.resize`: every channel resampled alone, channel c
    out of channel c in, when the channels are the last axis (FPN and U-Net upsampling)."""

    def trace(self, tracer: ChannelTracer, call: LayerCall) -> list[Slots | None]:
        if (getattr(call.layer, "data_format", None) or "channels_last") != "channels_last":
            raise NotApplicable("channels_first data format")
        return super().trace(tracer, call)


class ActivationRule(LayerRule):
    def trace(self, tracer: ChannelTracer, call: LayerCall) -> list[Slots | None]:
        if activation_name(call.layer) in MIXING_ACTIVATIONS:
            raise NotApplicable("softmax mixes channels")
        return super().trace(tracer, call)


class RescalingRule(LayerRule):
    def trace(self, tracer: ChannelTracer, call: LayerCall) -> list[Slots | None]:
        if np.size(call.layer.scale) != 1 or np.size(call.layer.offset) != 1:
            raise NotApplicable("per-channel scale or offset")
        return super().trace(tracer, call)


class MixingRule(LayerRule):
    """Known layers that mix or normalise across channels: their input channels stay."""

    def __init__(self, reason: str) -> None:
        self.mixing_reason = reason

    def trace(self, tracer: ChannelTracer, call: LayerCall) -> list[Slots | None]:
        raise NotApplicable(self.mixing_reason or "mixes channels")


class MergeRule(LayerRule):
    """Add, Multiply, Subtract, Average, Maximum, Minimum: channel c of every input is one channel."""

    def trace(self, tracer: ChannelTracer, call: LayerCall) -> list[Slots | None]:
        if any(_is_array_constant(arg) for arg in _flat(call.args)):
            raise NotApplicable("a per-channel constant operand")
        inputs = known_slots(call)
        width = last_dim(call.out_shapes[0])
        full = [s for s in inputs if len(s) == width]
        if not full or any(len(s) not in (width, 1) for s in inputs):
            raise NotApplicable("inputs of different channel counts")
        for other in full[1:]:
            tracer.tie(full[0], other)
        for narrow in (s for s in inputs if len(s) != width):
            tracer.fix(narrow, f"{call.path} broadcasts a single channel")
        return [full[0]]


class ConcatenateRule(LayerRule):
    def trace(self, tracer: ChannelTracer, call: LayerCall) -> list[Slots | None]:
        inputs = known_slots(call)
        rank = len(call.out_shapes[0])
        axis = call.layer.axis
        if axis in (-1, rank - 1):
            return [np.concatenate(inputs)]
        if len({len(s) for s in inputs}) != 1:
            raise NotApplicable("inputs of different channel counts")
        for other in inputs[1:]:
            tracer.tie(inputs[0], other)
        return [inputs[0]]


class FlattenRule(LayerRule):
    """Flatten of (H, W, C): position p*C + c carries channel c."""

    def trace(self, tracer: ChannelTracer, call: LayerCall) -> list[Slots | None]:
        slots = single_input(call)
        spatial = call.in_shapes[0][1:-1]
        if getattr(call.layer, "data_format", "channels_last") != "channels_last" and spatial:
            raise NotApplicable("channels_first data format")
        sizes = [d for d in spatial if d is not None]
        if len(sizes) != len(spatial):
            raise NotApplicable("spatial size unknown")
        return [np.tile(slots, int(np.prod(sizes, dtype=np.int64)))]


class ReshapeRule(LayerRule):
    """Reshape that keeps the channel axis last and whole, e.g. (C,) -> (1, 1, C) in squeeze-excite."""

    def trace(self, tracer: ChannelTracer, call: LayerCall) -> list[Slots | None]:
        slots = single_input(call)
        target = tuple(call.layer.target_shape)
        if not target or target[-1] != len(slots) or last_dim(call.out_shapes[0]) != len(slots):
            raise NotApplicable("moves channels off the last axis")
        return [slots]

    def new_config(self, config: dict[str, Any], in_masks: Masks, out_masks: Masks) -> dict:
        target = list(config["target_shape"])
        target[-1] = int(np.count_nonzero(first(out_masks)))
        return {**config, "target_shape": tuple(target)}


class ElementwiseOpRule(LayerRule):
    """Non-layer Keras ops such as `x + 3.0` or `ops.relu(x)`: element-wise, scalars only."""

    def trace(self, tracer: ChannelTracer, call: LayerCall) -> list[Slots | None]:
        if len(call.in_slots) > 1:
            return MergeRule().trace(tracer, call)
        if any(_is_array_constant(arg) for arg in _flat(call.args)):
            raise NotApplicable("a per-channel constant operand")
        return super().trace(tracer, call)


def weight_name(weight: Any) -> str:
    return str(weight.name).split("/")[-1].split(":")[0]


def layer_weights(layer: Any) -> dict[str, np.ndarray]:
    """The layer's weights by short name, in `layer.weights` order."""
    return {weight_name(w): np.asarray(w.numpy()) for w in layer.weights}


def weight_array(layer: Any, name: str) -> np.ndarray:
    for weight in layer.weights:
        if weight_name(weight) == name:
            return np.asarray(weight.numpy())
    raise NotApplicable(f"no weight {name!r}")


def first(masks: Masks) -> np.ndarray:
    """The keep-mask of the first tensor: a rule that traced a call always has it."""
    mask = masks[0]
    if mask is None:
        raise ValueError("a channel rule was asked to slice a tensor it never traced")
    return mask


def known_slots(call: LayerCall) -> list[Slots]:
    """Every input's channel ids; an input without a known channel axis stops the rule."""
    inputs = [s for s in call.in_slots if s is not None]
    if len(inputs) != len(call.in_slots):
        raise NotApplicable("an input without a known channel axis")
    return inputs


def single_input(call: LayerCall) -> Slots:
    if len(call.in_slots) != 1 or call.in_slots[0] is None or len(call.out_shapes) != 1:
        raise NotApplicable("expects one input with a known channel axis")
    return call.in_slots[0]


def last_dim(shape: tuple[int | None, ...]) -> int | None:
    return shape[-1] if shape else None


def activation_name(layer: Any) -> str:
    activation = getattr(layer, "activation", None)
    return str(getattr(activation, "__name__", activation or "linear"))


def _flat(values: Any) -> list[Any]:
    if isinstance(values, (list, tuple)):
        return [item for value in values for item in _flat(value)]
    if isinstance(values, dict):
        return [item for value in values.values() for item in _flat(value)]
    return [values]


def _is_array_constant(value: Any) -> bool:
    """True for a non-scalar constant (a numpy array or tensor that is not a KerasTensor)."""
    if type(value).__name__ == "KerasTensor":
        return False
    shape = getattr(value, "shape", None)
    return shape is not None and int(np.prod(shape)) > 1
