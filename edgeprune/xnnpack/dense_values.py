"""Dense values of a constant TFLite tensor, whatever its storage (dense or sparse).

TFLite stores a sparse tensor as a tree of dimensions in `traversal_order`, each DENSE (all
indices) or SPARSE_CSR (segments + indices), with optional block dims mapped onto original
dims by `block_map`; the leaves are the stored values in traversal order. This is
`FormatConverter::SparseToDense` (tensorflow/lite/kernels/internal/utils/
sparsity_format_converter.cc), level by level with numpy instead of recursion.
"""

from __future__ import annotations

import itertools

import numpy as np

from edgeprune.errors import UserError
from edgeprune.tflite.graph import Tensor, TFLiteModel

MAX_DENSE_BYTES = 2**31  # a weight tensor this large is a damaged file, not a model


def dense_values(model: TFLiteModel, tensor: Tensor) -> np.ndarray:
    """The constant as an array of its full shape (zeros where sparse storage has none)."""
    values = model.tensor_data(tensor)
    if values is None:
        raise UserError(f"tensor {tensor.index} ({tensor.name!r}) holds no constant data")
    if tensor.sparsity is None:
        return values.reshape(tensor.shape)
    if tensor.dense_size * values.itemsize > MAX_DENSE_BYTES:
        raise UserError(
            f"tensor {tensor.index} ({tensor.name!r}) would take "
            f"{tensor.dense_size * values.itemsize / 2**30:.1f} GiB dense; its shape "
            f"{list(tensor.shape)} is not believable for a weight"
        )
    try:
        return densify(values, tensor.shape, tensor.sparsity)
    except (IndexError, ValueError) as exc:  # index arrays that contradict the shape
        raise UserError(
            f"tensor {tensor.index} ({tensor.name!r}) has damaged sparse storage ({exc})"
        ) from None


def densify(values: np.ndarray, shape: tuple[int, ...], sparsity) -> np.ndarray:
    order = list(sparsity.traversal_order)
    dims = sparsity.dim_metadata
    rank = len(shape)
    if sorted(order) != list(range(len(order))) or len(order) < rank or len(dims) != len(order):
        raise ValueError(f"traversal order {order} does not fit rank {rank}")
    _check_level_sizes(shape, order, dims, list(sparsity.block_map))
    block_sizes = [dims[order.index(rank + b)].dense_size for b in range(len(order) - rank)]
    parents = np.zeros(1, dtype=np.int64)  # each live node's position at the previous level
    indices = np.zeros((1, 0), dtype=np.int64)
    for dim in dims:
        if dim.format == "DENSE":
            size = dim.dense_size
            children = (parents[:, None] * size + np.arange(size)).ravel()
            column = np.tile(np.arange(size), len(parents))
            indices = np.repeat(indices, size, axis=0)
        else:
            segments = np.asarray(dim.segments, dtype=np.int64)
            within = np.asarray(dim.indices, dtype=np.int64)
            starts, ends = segments[parents], segments[parents + 1]
            counts = ends - starts
            children = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(
                counts.sum()
            )
            column = within[children]
            indices = np.repeat(indices, counts, axis=0)
        indices = np.column_stack([indices, column])
        parents = children
    if len(indices) != len(values):
        raise UserError(
            f"sparse tensor of shape {list(shape)} stores {len(values)} values but its "
            f"index arrays describe {len(indices)}"
        )
    original = np.zeros((len(indices), rank), dtype=np.int64)
    for level in range(rank):
        original[:, order[level]] = indices[:, level]
    for level in range(rank, len(order)):
        block = order[level] - rank
        dim = sparsity.block_map[block]
        original[:, dim] = original[:, dim] * block_sizes[block] + indices[:, level]
    dense = np.zeros(shape, dtype=values.dtype)
    dense[tuple(original.T)] = values
    return dense


def _check_level_sizes(shape, order: list[int], dims, block_map: list[int]) -> None:
    """Every level's size must follow from the shape (so nothing is expanded past it)."""
    rank = len(shape)
    blocks = len(order) - rank
    if len(block_map) != blocks or any(not 0 <= d < rank for d in block_map):
        raise ValueError(f"block map {block_map} does not fit rank {rank}")
    block_sizes = [dims[order.index(rank + b)].dense_size for b in range(blocks)]
    for level, dim in enumerate(dims):
        original = order[level]
        if original >= rank:
            expected = block_sizes[original - rank]
        elif original in block_map:
            size = block_sizes[block_map.index(original)]
            expected = shape[original] // size if size > 0 else -1
        else:
            expected = shape[original]
        if dim.format == "DENSE" and dim.dense_size != expected:
            raise ValueError(f"level {level} holds {dim.dense_size} entries, not {expected}")
        if dim.format != "DENSE" and any(not 0 <= i < expected for i in dim.indices):
            raise ValueError(f"level {level} has indices outside 0..{expected - 1}")
        segments = dim.segments
        if dim.format != "DENSE" and any(b < a for a, b in itertools.pairwise(segments)):
            raise ValueError(f"level {level} has decreasing segments")
