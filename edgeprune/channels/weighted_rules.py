"""Rules for layers with weights: convolutions and Dense create filters, depthwise convs and
BN carry their input's channels and slice per-channel weights along with them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from edgeprune.channels.rules import (
    MIXING_ACTIVATIONS,
    LayerCall,
    LayerRule,
    Masks,
    NotApplicable,
    Slots,
    activation_name,
    first,
    single_input,
    weight_array,
)

if TYPE_CHECKING:
    from edgeprune.channels.graph import ChannelTracer


class ConvRule(LayerRule):
    """Conv1D/2D/3D: new filters on the last axis of a kernel (..., in, out)."""

    weight_names = frozenset({"kernel", "bias"})
    size_key = "filters"
    transposed = False

    def trace(self, tracer: ChannelTracer, call: LayerCall) -> list[Slots | None]:
        layer = call.layer
        if getattr(layer, "groups", 1) != 1:
            raise NotApplicable("grouped convolution")
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            raise NotApplicable("channels_first data format")
        slots = single_input(call)
        kernel = weight_array(layer, "kernel")
        in_axis, out_axis = (-1, -2) if self.transposed else (-2, -1)
        if kernel.shape[in_axis] != len(slots):
            raise NotApplicable("kernel does not match the input channels")
        filters = np.moveaxis(kernel, out_axis, 0).reshape(kernel.shape[out_axis], -1)
        ids = tracer.new_source(call.path, filters)
        if activation_name(layer) in MIXING_ACTIVATIONS:
            tracer.fix(ids, f"{call.path} ends in softmax")
        return [ids]

    def new_config(self, config: dict[str, Any], in_masks: Masks, out_masks: Masks) -> dict:
        return {**config, self.size_key: int(np.count_nonzero(first(out_masks)))}

    def new_weights(
        self, weights: dict[str, np.ndarray], in_masks: Masks, out_masks: Masks
    ) -> dict[str, np.ndarray]:
        kernel = weights["kernel"]
        in_axis, out_axis = (-1, -2) if self.transposed else (-2, -1)
        kernel = np.compress(first(in_masks), kernel, axis=in_axis)
        kernel = np.compress(first(out_masks), kernel, axis=out_axis)
        result = {**weights, "kernel": kernel}
        if "bias" in weights:
            result["bias"] = weights["bias"][first(out_masks)]
        return result


class ConvTransposeRule(ConvRule):
    transposed = True


class DenseRule(ConvRule):
    """Dense acts on the last axis like a 1x1 conv: kernel (in, out)."""

    size_key = "units"

    def trace(self, tracer: ChannelTracer, call: LayerCall) -> list[Slots | None]:
        if getattr(call.layer, "lora_enabled", False):
            raise NotApplicable("LoRA-enabled Dense")
        return super().trace(tracer, call)


class SeparableConvRule(LayerRule):
    """SeparableConv: a depthwise part that follows the input, then new pointwise filters."""

    weight_names = frozenset({"depthwise_kernel", "pointwise_kernel", "bias"})

    def trace(self, tracer: ChannelTracer, call: LayerCall) -> list[Slots | None]:
        layer = call.layer
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            raise NotApplicable("channels_first data format")
        slots = single_input(call)
        if weight_array(layer, "depthwise_kernel").shape[-2] != len(slots):
            raise NotApplicable("kernel does not match the input channels")
        pointwise = weight_array(layer, "pointwise_kernel")
        ids = tracer.new_source(
            call.path, np.moveaxis(pointwise, -1, 0).reshape(pointwise.shape[-1], -1)
        )
        if activation_name(layer) in MIXING_ACTIVATIONS:
            tracer.fix(ids, f"{call.path} ends in softmax")
        return [ids]

    def new_config(self, config: dict[str, Any], in_masks: Masks, out_masks: Masks) -> dict:
        return {**config, "filters": int(np.count_nonzero(first(out_masks)))}

    def new_weights(
        self, weights: dict[str, np.ndarray], in_masks: Masks, out_masks: Masks
    ) -> dict[str, np.ndarray]:
        depthwise = weights["depthwise_kernel"]
        multiplier = depthwise.shape[-1]
        expanded = np.repeat(first(in_masks), multiplier)  # pointwise input c*m+k follows input c
        pointwise = np.compress(expanded, weights["pointwise_kernel"], axis=-2)
        result = {
            **weights,
            "depthwise_kernel": np.compress(first(in_masks), depthwise, axis=-2),
            "pointwise_kernel": np.compress(first(out_masks), pointwise, axis=-1),
        }
        if "bias" in weights:
            result["bias"] = weights["bias"][first(out_masks)]
        return result


class DepthwiseRule(LayerRule):
    """Depthwise conv: output channel c*m+k comes from input channel c, so they go together."""

    weight_names = frozenset({"kernel", "bias"})

    def trace(self, tracer: ChannelTracer, call: LayerCall) -> list[Slots | None]:
        layer = call.layer
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            raise NotApplicable("channels_first data format")
        slots = single_input(call)
        kernel = weight_array(layer, "kernel")  # (..., in, multiplier)
        if kernel.shape[-2] != len(slots):
            raise NotApplicable("kernel does not match the input channels")
        per_channel = np.moveaxis(kernel, -2, 0).reshape(kernel.shape[-2], -1)
        tracer.add_scores(call.path, slots, per_channel)
        return [np.repeat(slots, kernel.shape[-1])]

    def new_weights(
        self, weights: dict[str, np.ndarray], in_masks: Masks, out_masks: Masks
    ) -> dict[str, np.ndarray]:
        result = {**weights, "kernel": np.compress(first(in_masks), weights["kernel"], axis=-2)}
        if "bias" in weights:
            result["bias"] = weights["bias"][first(out_masks)]
        return result


class PerChannelRule(LayerRule):
    """BatchNormalization, PReLU: channels pass through; per-channel vectors are sliced."""

    def __init__(self, names: frozenset[str]) -> None:
        self.weight_names = names

    def trace(self, tracer: ChannelTracer, call: LayerCall) -> list[Slots | None]:
        axis = getattr(call.layer, "axis", -1)
        rank = len(call.in_shapes[0])
        if isinstance(axis, (list, tuple)):
            axis = axis[0] if len(axis) == 1 else None
        if axis is not None and axis not in (-1, rank - 1):
            raise NotApplicable("normalises along an axis other than the channels")
        return super().trace(tracer, call)

    def new_weights(
        self, weights: dict[str, np.ndarray], in_masks: Masks, out_masks: Masks
    ) -> dict[str, np.ndarray]:
        mask = first(out_masks)
        return {
            name: value[..., mask] if value.ndim and value.shape[-1] == len(mask) else value
            for name, value in weights.items()
        }
