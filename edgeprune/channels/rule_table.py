"""Which rule applies to which Keras class; anything not listed is an unknown layer.

Only the stock Keras classes get a rule (a user's subclass of Conv2D may do anything in
`call`), and a stock class carrying weights the rule does not know (quantized, LoRA) is
unknown too, so nothing is sliced that the rule does not understand.
"""

from __future__ import annotations

from typing import Any

from edgeprune.channels.rules import (
    ActivationRule,
    ConcatenateRule,
    ElementwiseOpRule,
    FlattenRule,
    LayerRule,
    MergeRule,
    MixingRule,
    PassThrough,
    RescalingRule,
    ReshapeRule,
    SpatialRule,
    weight_name,
)
from edgeprune.channels.weighted_rules import (
    ConvRule,
    ConvTransposeRule,
    DenseRule,
    DepthwiseRule,
    PerChannelRule,
    SeparableConvRule,
)
from edgeprune.layer_kinds import INFERENCE_IDENTITY_LAYERS

_PASS_THROUGH = [
    "ReLU",
    "LeakyReLU",
    "ELU",
    *INFERENCE_IDENTITY_LAYERS,
    "ZeroPadding1D",
    "ZeroPadding2D",
    "ZeroPadding3D",
    "Cropping1D",
    "Cropping2D",
    "Cropping3D",
    "MaxPooling1D",
    "MaxPooling2D",
    "MaxPooling3D",
    "AveragePooling1D",
    "AveragePooling2D",
    "AveragePooling3D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalAveragePooling3D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GlobalMaxPooling3D",
    "UpSampling1D",
    "UpSampling2D",
    "UpSampling3D",
]

_MIXING = {
    "Softmax": "softmax mixes channels",
    "LayerNormalization": "normalises across channels",
    "GroupNormalization": "normalises across channel groups",
    "UnitNormalization": "normalises across channels",
    "Normalization": "holds per-channel statistics that are not sliced",
    "Permute": "moves the channel axis",
}

_ELEMENTWISE_OPS = [
    "Add",
    "Subtract",
    "Multiply",
    "Divide",
    "TrueDivide",
    "Maximum",
    "Minimum",
    "Power",
    "Abs",
    "Absolute",
    "Negative",
    "Exp",
    "Log",
    "Sqrt",
    "Square",
    "Tanh",
    "Sigmoid",
    "HardSigmoid",
    "Relu",
    "Relu6",
    "Silu",
    "HardSilu",
    "Gelu",
    "Elu",
    "Selu",
    "LeakyRelu",
    "Softplus",
    "Softsign",
    "Clip",
    "Sin",
    "Cos",
    "Sign",
    "Round",
    "Floor",
    "Ceil",
]


_SPATIAL = ["Resizing", "CenterCrop"]
"""Preprocessing layers that resample each channel alone (FPN/U-Net upsampling)."""


def _build_table() -> dict[str, LayerRule]:
    table: dict[str, LayerRule] = {name: PassThrough() for name in _PASS_THROUGH}
    table.update({name: SpatialRule() for name in _SPATIAL})
    table.update({name: MixingRule(reason) for name, reason in _MIXING.items()})
    table.update(
        {
            "Activation": ActivationRule(),
            "Rescaling": RescalingRule(),
            "Conv1D": ConvRule(),
            "Conv2D": ConvRule(),
            "Conv3D": ConvRule(),
            "Conv1DTranspose": ConvTransposeRule(),
            "Conv2DTranspose": ConvTransposeRule(),
            "Conv3DTranspose": ConvTransposeRule(),
            "Dense": DenseRule(),
            "SeparableConv1D": SeparableConvRule(),
            "SeparableConv2D": SeparableConvRule(),
            "DepthwiseConv1D": DepthwiseRule(),
            "DepthwiseConv2D": DepthwiseRule(),
            "BatchNormalization": PerChannelRule(
                frozenset({"gamma", "beta", "moving_mean", "moving_variance"})
            ),
            "PReLU": PerChannelRule(frozenset({"alpha"})),
            "Concatenate": ConcatenateRule(),
            "Flatten": FlattenRule(),
            "Reshape": ReshapeRule(),
        }
    )
    merge = MergeRule()
    for name in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"):
        table[name] = merge
    return table


LAYER_RULES = _build_table()
OP_RULE = ElementwiseOpRule()
OP_RULES: dict[str, LayerRule] = {"Concatenate": ConcatenateRule(), "Resize": SpatialRule()}
"""Non-element-wise Keras ops with a rule: `ops.concatenate` and `ops.image.resize`, as
hand-written U-Net skips and FPN top-down paths use them."""


def rule_for(operation: Any) -> LayerRule | None:
    """The rule for a stock Keras layer or element-wise op; None for anything else."""
    cls = type(operation)
    if not cls.__module__.startswith("keras."):
        return None
    name = cls.__name__
    if ".ops." in cls.__module__:
        return OP_RULE if name in _ELEMENTWISE_OPS else OP_RULES.get(name)
    rule = LAYER_RULES.get(name)
    if rule is None or rule.mixing_reason is not None:
        return rule
    names = {weight_name(w) for w in getattr(operation, "weights", [])}
    if not names <= rule.weight_names:
        return None  # quantized or otherwise extended variants keep their channels
    return rule
