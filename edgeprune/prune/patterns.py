"""Sparsity patterns: N:M groups and RxC blocks, as exact numpy masks that can be verified.

Kernels are seen as a stack of ``(out, in)`` matrices, one per spatial tap, via a
`KernelLayout` that names the input-channel and output-channel axes:

- Keras ``Conv2D`` kernel ``(kh, kw, in, out)`` and ``SeparableConv2D`` pointwise kernel
  ``(1, 1, in, out)``: ``KernelLayout(in_axis=2, out_axis=3)``;
- Keras ``Dense`` kernel ``(in, out)``: ``KernelLayout(0, 1)``;
- TFLite ``CONV_2D`` weights ``(out, kh, kw, in)``: ``KernelLayout(3, 0)``; TFLite
  ``FULLY_CONNECTED`` weights ``(out, in)``: ``KernelLayout(1, 0)``;
- depthwise kernels have no input-channel axis (each channel has its own filter), so
  patterns do not apply to them (``KernelLayout(None, None)``).

``N:M``: in every group of M consecutive weights along the input-channel axis (at the same
tap and output channel) at most N are non-zero; sparsity is fixed at ``1 - N/M``.

``block:RxC``: whole blocks of R consecutive output channels x C consecutive input channels
(at the same tap) are zero or kept. ``block:4x1`` is the shape XNNPACK's sparse 1x1
kernels process together (4 output channels that share one input channel's non-zero), and
TFLite's converter stores such blocks compactly. Sparsity is a multiple of the block size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from edgeprune.errors import UserError

PATTERN_HELP = "use N:M (e.g. 2:4) or block:RxC (e.g. block:4x1)"


@dataclass(frozen=True)
class KernelLayout:
    """Which axes of a kernel are its input and output channels (None: it has none)."""

    in_axis: int | None
    out_axis: int | None

    @property
    def has_channels(self) -> bool:
        return self.in_axis is not None and self.out_axis is not None

    def axes(self, ndim: int) -> tuple[int, int]:
        if self.in_axis is None or self.out_axis is None:
            raise ValueError("this kernel has no input/output channel axes")
        return self.in_axis % ndim, self.out_axis % ndim


DENSE_LAYOUT = KernelLayout(0, 1)
CONV_LAYOUT = KernelLayout(-2, -1)
DEPTHWISE_LAYOUT = KernelLayout(None, None)


def to_matrices(weights: np.ndarray, layout: KernelLayout) -> np.ndarray:
    """A view of the kernel as ``(taps, out, in)``: one (out, in) matrix per spatial tap."""
    in_axis, out_axis = layout.axes(weights.ndim)
    moved = np.moveaxis(weights, (out_axis, in_axis), (-2, -1))
    return moved.reshape(-1, moved.shape[-2], moved.shape[-1])


def from_matrices(matrices: np.ndarray, shape: tuple[int, ...], layout: KernelLayout) -> np.ndarray:
    """Inverse of `to_matrices` for an array of the kernel's `shape`."""
    in_axis, out_axis = layout.axes(len(shape))
    rest = [d for i, d in enumerate(shape) if i not in (in_axis, out_axis)]
    moved = matrices.reshape((*rest, shape[out_axis], shape[in_axis]))
    return np.moveaxis(moved, (-2, -1), (out_axis, in_axis))


@dataclass(frozen=True)
class NMPattern:
    """At most `n` non-zeros in every `m` consecutive weights along the input channels."""

    n: int
    m: int

    def __str__(self) -> str:
        return f"{self.n}:{self.m}"

    @property
    def fixed_sparsity(self) -> float:
        return 1.0 - self.n / self.m

    @property
    def unit_size(self) -> int:
        return 1

    def shape_problem(self, shape: tuple[int, ...], layout: KernelLayout) -> str | None:
        """Why this pattern cannot apply to a kernel of `shape`, or None when it can."""
        if not layout.has_channels:
            return f"pattern {self} needs an input-channel axis and a depthwise kernel has none"
        in_axis, _ = layout.axes(len(shape))
        if shape[in_axis] % self.m:
            return f"{shape[in_axis]} input channels are not a multiple of {self.m}"
        return None

    def _groups(self, weights: np.ndarray, layout: KernelLayout) -> np.ndarray:
        matrices = to_matrices(weights, layout)
        taps, out, inp = matrices.shape
        return matrices.reshape(taps, out, inp // self.m, self.m)

    def violations(self, weights: np.ndarray, layout: KernelLayout) -> int:
        """How many groups hold more than N non-zeros (0: the kernel satisfies the pattern)."""
        groups = self._groups(np.asarray(weights), layout)
        return int(np.count_nonzero(np.count_nonzero(groups, axis=-1) > self.n))

    def mask(self, weights: np.ndarray, layout: KernelLayout, sparsity: float) -> np.ndarray:
        """Keep-mask (True = kept) pruning a `sparsity` fraction of the kernel.

        Only each group's M-N smallest weights are candidates, smallest first; at
        `sparsity` = 1-N/M every candidate is pruned and the kernel is exactly N:M. A lower
        sparsity (the ramp of a gradual schedule) prunes part of the way there.
        """
        weights = np.asarray(weights)
        groups = np.abs(self._groups(weights, layout))
        order = np.argsort(groups, axis=-1, kind="stable")
        candidate = np.zeros(groups.shape, dtype=bool)
        np.put_along_axis(candidate, order[..., : self.m - self.n], True, axis=-1)
        if sparsity >= self.fixed_sparsity - 1e-9:
            prune = candidate
        else:
            count = round(sparsity * weights.size)
            flat_scores = np.where(candidate, groups, np.inf).ravel()
            prune = np.zeros(flat_scores.size, dtype=bool)
            if count > 0:
                prune[np.argpartition(flat_scores, count - 1)[:count]] = True
            prune = prune.reshape(groups.shape)
        keep = ~prune.reshape(groups.shape[0], groups.shape[1], -1)
        return from_matrices(keep, weights.shape, layout)


@dataclass(frozen=True)
class BlockPattern:
    """Whole blocks of `rows` output channels x `cols` input channels are zero or kept."""

    rows: int
    cols: int

    def __str__(self) -> str:
        return f"block:{self.rows}x{self.cols}"

    @property
    def fixed_sparsity(self) -> None:
        return None

    @property
    def unit_size(self) -> int:
        return self.rows * self.cols

    def shape_problem(self, shape: tuple[int, ...], layout: KernelLayout) -> str | None:
        if not layout.has_channels:
            return f"pattern {self} needs an input-channel axis and a depthwise kernel has none"
        in_axis, out_axis = layout.axes(len(shape))
        if shape[out_axis] % self.rows:
            return f"{shape[out_axis]} output channels are not a multiple of {self.rows}"
        if shape[in_axis] % self.cols:
            return f"{shape[in_axis]} input channels are not a multiple of {self.cols}"
        return None

    def _blocks(self, weights: np.ndarray, layout: KernelLayout) -> np.ndarray:
        """``(taps, out/R, in/C, R, C)``."""
        matrices = to_matrices(weights, layout)
        taps, out, inp = matrices.shape
        blocks = matrices.reshape(taps, out // self.rows, self.rows, inp // self.cols, self.cols)
        return blocks.transpose(0, 1, 3, 2, 4)

    def violations(self, weights: np.ndarray, layout: KernelLayout) -> int:
        """How many blocks are partly zero (0: every block is all-zero or all-kept)."""
        blocks = self._blocks(np.asarray(weights), layout)
        nonzero = np.count_nonzero(blocks, axis=(-2, -1))
        return int(np.count_nonzero((nonzero > 0) & (nonzero < self.unit_size)))

    def scores(self, weights: np.ndarray, layout: KernelLayout) -> np.ndarray:
        """Mean |w| of every block, flattened: the unit a magnitude criterion ranks."""
        blocks = np.abs(self._blocks(np.asarray(weights), layout))
        return blocks.mean(axis=(-2, -1)).ravel()

    def expand(
        self, keep_units: np.ndarray, shape: tuple[int, ...], layout: KernelLayout
    ) -> np.ndarray:
        """A per-block keep vector (from `scores` order) -> a keep-mask of the kernel's shape."""
        in_axis, out_axis = layout.axes(len(shape))
        taps = int(np.prod(shape)) // (shape[in_axis] * shape[out_axis])
        grid = keep_units.reshape(taps, shape[out_axis] // self.rows, shape[in_axis] // self.cols)
        full = np.repeat(np.repeat(grid, self.rows, axis=1), self.cols, axis=2)
        return from_matrices(full, shape, layout)


Pattern = NMPattern | BlockPattern

_NM = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")
_BLOCK = re.compile(r"^\s*block\s*:\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_pattern(text: str | Pattern | None) -> Pattern | None:
    """'2:4' -> NMPattern(2, 4); 'block:4x1' -> BlockPattern(4, 1); None/'' -> None."""
    if text is None or isinstance(text, NMPattern | BlockPattern):
        return text
    if not str(text).strip():
        return None
    if match := _NM.match(str(text)):
        n, m = int(match[1]), int(match[2])
        if n < 1 or m < 2 or n >= m:
            raise UserError(
                f"pattern {text!r}: N:M needs 1 <= N < M (at most N non-zeros in every M); e.g. 2:4"
            )
        return NMPattern(n, m)
    if match := _BLOCK.match(str(text)):
        rows, cols = int(match[1]), int(match[2])
        if rows < 1 or cols < 1:
            raise UserError(f"pattern {text!r}: block sizes must be >= 1; e.g. block:4x1")
        if rows * cols == 1:
            raise UserError(
                f"pattern {text!r}: a 1x1 block is plain unstructured pruning; leave `pattern` out",
                params=("pattern",),
            )
        return BlockPattern(rows, cols)
    raise UserError(f"pattern {str(text)!r} is not understood; {PATTERN_HELP}")
