"""XNNPACK's per-node sparse-path (NCHW) rules, written once for both front ends.

A faithful transcription of `xnn_check_nchw_compatibility` (XNNPACK `src/subgraph.c`) plus
the define-time and fusion steps that decide the parameters it sees:

- TFLite SAME padding becomes explicit symmetric padding only at stride 1
  (`xnn_define_[depthwise_]convolution_2d`); at stride 2 the node keeps the
  TENSORFLOW_SAME_PADDING flag, which no sparse-path conv accepts.
- A constant zero PAD of the spatial dims whose only reader is a conv without that flag
  is folded into the conv's padding (`xnn_subgraph_fusion`).

Each check returns the node's layout flags and, when they are 0, a sentence a user can act
on. Two findings differ from TFLite's README and were measured (ai-edge-litert 2.3.0 under
an emulated Cortex-A76, sparse vs dense storage of the same 90 %-sparse model): a
constant ADD/MUL operand must itself be 4-D (a scalar `x + 3.0` or a per-channel 1-D
vector from a lone BatchNormalization breaks the cluster: 1.2x instead of 4.3x), and any
4-D unary op (TANH too) may sit inside (3.7x). FULLY_CONNECTED is not part of a cluster:
a dense 1280x1000 classifier after the pooling did not stop the sparse path (1.9x).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

NCHW = 1  # runs inside a cluster
NHWC2NCHW = 2  # may start a cluster (reads NHWC, writes NCHW)
NCHW2NHWC = 4  # may end a cluster (reads NCHW, writes NHWC)
IN_CLUSTER = NCHW | NCHW2NHWC

# TFLite ops XNNPACK maps to unary element-wise nodes (any of them may sit in a cluster).
UNARY_OPS = frozenset(
    {
        "ABS",
        "CEIL",
        "COS",
        "ELU",
        "EXP",
        "FLOOR",
        "GELU",
        "HARD_SWISH",
        "LEAKY_RELU",
        "LOG",
        "LOGISTIC",
        "NEG",
        "RELU",
        "RELU6",
        "RELU_N1_TO_1",
        "RELU_0_TO_1",
        "ROUND",
        "RSQRT",
        "SIN",
        "SQRT",
        "SQUARE",
        "TANH",
    }
)
FIX_HINT = "edgeprune xnnpack-fix does this"


@dataclass(frozen=True)
class Padding:
    """Explicit padding (top, right, bottom, left), or TensorFlow SAME kept as a flag."""

    top: int = 0
    right: int = 0
    bottom: int = 0
    left: int = 0
    tf_same: bool = False

    def plus(self, top: int, right: int, bottom: int, left: int) -> Padding:
        return Padding(self.top + top, self.right + right, self.bottom + bottom, self.left + left)

    def is_uniform(self, value: int) -> bool:
        return not self.tf_same and (self.top, self.right, self.bottom, self.left) == (value,) * 4

    def __str__(self) -> str:
        if self.tf_same:
            return "SAME (computed at run time)"
        return f"top {self.top}, bottom {self.bottom}, left {self.left}, right {self.right}"


def conv_padding(
    same: bool, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
) -> Padding:
    """What XNNPACK makes of TFLite's SAME/VALID: explicit only at stride 1."""
    if not same:
        return Padding()
    if stride != (1, 1):
        return Padding(tf_same=True)
    height = (kernel[0] - 1) * dilation[0]
    width = (kernel[1] - 1) * dilation[1]
    return Padding(height // 2, width - width // 2, height - height // 2, width // 2)


def can_fold_pad(consumer_padding: Padding) -> bool:
    """A constant PAD folds into a conv unless that conv keeps the SAME flag (stride > 1)."""
    return not consumer_padding.tf_same


@dataclass(frozen=True)
class Verdict:
    flags: int
    problem: str | None = None


def _padding_fix(kernel: int, stride: int) -> str:
    pad = (kernel - 1) // 2
    return (
        f"use ZeroPadding2D({pad}) + padding='valid'"
        if stride > 1
        else f"use padding='same' (or ZeroPadding2D({pad}) + 'valid')"
    )


def conv2d_verdict(
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    padding: Padding,
    groups: int,
    input_channels: int,
    folded_pad: str | None = None,
) -> Verdict:
    """CONV_2D: 1x1 inside a cluster, or the 3x3 stride-2 3-channel conv that starts one."""
    if groups != 1:
        return Verdict(0, f"grouped conv ({groups} groups); sparse clusters take groups=1 only")
    if dilation != (1, 1):
        return Verdict(0, f"dilation {dilation[0]}x{dilation[1]}; sparse clusters take none")
    if kernel == (1, 1):
        if padding.tf_same or (padding.top, padding.right, padding.bottom, padding.left) != (
            0,
            0,
            0,
            0,
        ):
            where = f" from {folded_pad}" if folded_pad else ""
            return Verdict(
                0, f"1x1 conv with padding ({padding}{where}); remove the padding before it"
            )
        if stride != (1, 1):
            return Verdict(
                0,
                f"1x1 conv with stride {stride[0]}x{stride[1]}; inside a sparse cluster 1x1 "
                "convs take stride 1: move the stride to the depthwise conv",
            )
        return Verdict(NCHW)
    if kernel == (3, 3):
        if stride != (2, 2):
            return Verdict(
                0,
                f"3x3 conv with stride {stride[0]}x{stride[1]}: a full 3x3 conv may only "
                "start a sparse cluster, with stride 2; inside use depthwise 3x3 + 1x1 convs",
            )
        if padding.tf_same:
            return Verdict(
                0,
                "stride-2 SAME padding (TFLite pads asymmetrically at run time); "
                f"{_padding_fix(3, 2)} ({FIX_HINT})",
            )
        if not padding.is_uniform(1):
            return Verdict(0, _pad_problem(padding, 3, 2, folded_pad))
        if input_channels != 3:
            return Verdict(
                0,
                f"3x3 stride-2 conv with {input_channels} input channels: it starts a sparse "
                "cluster only with 3 (an RGB image); inside use depthwise 3x3 + 1x1 convs",
            )
        return Verdict(NHWC2NCHW)
    return Verdict(
        0,
        f"{kernel[0]}x{kernel[1]} conv: sparse clusters hold 1x1 convs, plus the 3x3 "
        "stride-2 conv that starts them; use depthwise + 1x1 convs",
    )


def depthwise_verdict(
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    padding: Padding,
    multiplier: int,
    folded_pad: str | None = None,
) -> Verdict:
    """DEPTHWISE_CONV_2D: 3x3 or 5x5, stride 1 or 2, padding 1 or 2 on every side."""
    if dilation != (1, 1):
        return Verdict(0, f"dilation {dilation[0]}x{dilation[1]}; sparse clusters take none")
    if padding.tf_same:
        k = kernel[0] if kernel[0] == kernel[1] else 3
        return Verdict(
            0,
            f"stride-{stride[0]} SAME padding (TFLite pads asymmetrically at run time); "
            f"{_padding_fix(k, 2)} ({FIX_HINT})",
        )
    if multiplier != 1:
        return Verdict(0, f"depth multiplier {multiplier}; sparse clusters take 1")
    if stride[0] != stride[1] or stride[0] not in (1, 2):
        return Verdict(0, f"stride {stride[0]}x{stride[1]}; sparse clusters take 1x1 or 2x2")
    if kernel not in ((3, 3), (5, 5)):
        return Verdict(
            0, f"{kernel[0]}x{kernel[1]} depthwise kernel; sparse clusters take 3x3 or 5x5"
        )
    want = (kernel[0] - 1) // 2
    if not padding.is_uniform(want):
        return Verdict(0, _pad_problem(padding, kernel[0], stride[0], folded_pad))
    return Verdict(NCHW)


def _pad_problem(padding: Padding, kernel: int, stride: int, folded_pad: str | None) -> str:
    want = (kernel - 1) // 2
    where = f", {folded_pad} folded in" if folded_pad else ""
    asym = ""
    if (padding.top, padding.left) == (0, 0) and padding.bottom and padding.right:
        asym = ": Keras' asymmetric stride-2 padding ((0,1),(0,1))"
    return (
        f"padding {padding}{where}{asym}; a {kernel}x{kernel} conv in a sparse cluster needs "
        f"{want} on every side: {_padding_fix(kernel, stride)} ({FIX_HINT})"
    )


def mean_verdict(input_rank: int, axes: Sequence[int] | None) -> Verdict:
    """MEAN over the spatial axes of a 4-D tensor (global average pooling) ends a cluster."""
    if input_rank != 4 or axes is None:
        return Verdict(0, f"MEAN of a {input_rank}-D tensor; only 4-D global average pooling")
    normal = sorted({a % 4 for a in axes})
    if normal != [1, 2]:
        return Verdict(
            0, f"MEAN over axes {list(axes)}; only the spatial axes [1, 2] end a sparse cluster"
        )
    return Verdict(NCHW | NCHW2NHWC)


def binary_verdict(
    op: str, ranks: Sequence[int], constant_shapes: Sequence[tuple[int, ...] | None]
) -> Verdict:
    """ADD/MUL of two 4-D tensors; a constant operand must be 4-D with one non-unit dim."""
    if op not in ("ADD", "MUL"):
        return Verdict(0, f"{op} cannot run in XNNPACK's sparse (NCHW) layout; only ADD and MUL")
    if len(ranks) != 2:
        return Verdict(0, f"{op} of {len(ranks)} inputs; only two")
    for rank, shape in zip(ranks, constant_shapes, strict=True):
        if rank != 4:
            what = "constant" if shape is not None else "input"
            detail = f" {list(shape)}" if shape is not None else ""
            return Verdict(
                0,
                f"{op} with a {rank}-D {what}{detail}; both operands must be 4-D (a scalar "
                "or per-channel constant, e.g. from `x + 3.0`, hard_sigmoid or a "
                "BatchNormalization not right after a conv, breaks the cluster)",
            )
        if shape is not None and sum(1 for d in shape if d != 1) > 1:
            return Verdict(0, f"{op} with a constant of shape {list(shape)}; at most one dim > 1")
    return Verdict(NCHW)


def resize_verdict(height: int, width: int) -> Verdict:
    if height > 1 and width > 1:
        return Verdict(NCHW)
    return Verdict(0, f"RESIZE_BILINEAR of a {height}x{width} input; needs both > 1")


def unary_verdict(op: str, rank: int) -> Verdict:
    if rank == 4:
        return Verdict(NCHW)
    return Verdict(0, f"{op} of a {rank}-D tensor; element-wise ops in a cluster are 4-D")


def unsupported(op: str) -> Verdict:
    return Verdict(
        0,
        f"{op} cannot run in XNNPACK's sparse (NCHW) layout; keep it before the first "
        "conv or after the global average pooling",
    )
