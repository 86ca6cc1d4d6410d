"""The same `.tflite` weights stored the other way: sparse -> dense, or dense -> sparse.

`bench --sparse-ab` compares one set of weights stored two ways. For a Keras model the
converter makes both; for a `.tflite` we rewrite the flatbuffer with the schema's object
API (the runtime's own schema module):

- dense twin: each DENSIFY op of a constant is dropped and its output tensor gets the
  densified values (`dense_values`);
- sparse twin: each CONV_2D / FULLY_CONNECTED / DEPTHWISE_CONV_2D weight that is at least
  half zeros is stored the way TFLite's converter stores it (every dim DENSE but the
  last, which is SPARSE_CSR) and read through a new DENSIFY op.

A twin is only kept when the runtime gives the same outputs for both (checked by
`check_same_outputs`), so a broken rewrite can never be measured.
"""

from __future__ import annotations

import numpy as np

from edgeprune.errors import UserError
from edgeprune.tflite.flatbuffer import read_model
from edgeprune.tflite.schema import TFLITE_IDENTIFIER, schema_module
from edgeprune.xnnpack.dense_values import dense_values

SPARSE_MIN_ZEROS = 0.5
_WEIGHTED = ("CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D")


def _builtin(schema, name: str) -> int:
    return int(getattr(schema.BuiltinOperator, name))


def _opcode_name(schema, code) -> int:
    return max(int(code.builtinCode), int(code.deprecatedBuiltinCode))


def _pack(model) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def dense_twin(data: bytes) -> bytes:
    """The model with every DENSIFY of a constant replaced by the dense constant."""
    schema = schema_module()
    parsed = read_model(data)
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    densify = _builtin(schema, "DENSIFY")
    changed = 0
    for index, graph in enumerate(model.subgraphs):
        kept = []
        for op in graph.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            source = (
                graph.tensors[op.inputs[0]] if op.inputs is not None and len(op.inputs) else None
            )
            if _opcode_name(schema, code) != densify or source is None or source.sparsity is None:
                kept.append(op)
                continue
            values = dense_values(parsed, parsed.subgraphs[index].tensors[op.inputs[0]])
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(
                values.astype(values.dtype.newbyteorder("<")).tobytes(), np.uint8
            )
            model.buffers.append(buffer)
            graph.tensors[op.outputs[0]].buffer = len(model.buffers) - 1
            _release(model, source)  # now an unused, empty tensor
            source.sparsity = None
            changed += 1
        graph.operators = kept
    if not changed:
        raise UserError("the model stores no weights sparse (no DENSIFY op); nothing to densify")
    return _pack(model)


def sparse_twin(data: bytes, min_zeros: float = SPARSE_MIN_ZEROS) -> bytes:
    """The model with each weight that is >= `min_zeros` zero stored sparse behind a DENSIFY."""
    schema = schema_module()
    parsed = read_model(data)
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    densify_code = _densify_opcode(schema, model)
    changed = 0
    for index, graph in enumerate(model.subgraphs):
        view = parsed.subgraphs[index]
        done: set[int] = set()
        added = []
        for op in view.operators:
            if op.opcode not in _WEIGHTED or len(op.inputs) < 2:
                continue
            weight = _weight_tensor(parsed, view, op.inputs[1])
            if weight is None or weight.index in done:
                continue
            values = dense_values(parsed, weight)
            if values.size == 0 or np.count_nonzero(values) > (1 - min_zeros) * values.size:
                continue
            done.add(weight.index)
            added.append(_store_sparse(schema, model, graph, weight.index, values, densify_code))
            changed += 1
        graph.operators = added + list(graph.operators or [])
    if not changed:
        raise UserError(
            f"no conv or fully-connected weight is at least {min_zeros:.0%} zero, so there is "
            "nothing to store sparse; prune the model first (edgeprune prune --policy xnnpack)"
        )
    return _pack(model)


def _weight_tensor(parsed, view, index: int):
    """The constant float weight an op reads (through DEQUANTIZE of fp16), or None."""
    tensor = view.tensors[index]
    producer = view.producer(index)
    if producer is not None and producer.opcode == "DEQUANTIZE" and producer.inputs:
        tensor = view.tensors[producer.inputs[0]]
    if not parsed.is_constant(tensor) or tensor.sparsity is not None:
        return None
    if tensor.dtype not in ("FLOAT32", "FLOAT16"):
        return None
    return tensor


def _release(model, tensor) -> None:
    """Point `tensor` at the empty buffer 0 and drop its old data if nothing else uses it."""
    old, tensor.buffer = tensor.buffer, 0
    users = sum(1 for g in model.subgraphs for t in g.tensors if t.buffer == old)
    if old and not users:
        model.buffers[old].data = None


def _densify_opcode(schema, model) -> int:
    densify = _builtin(schema, "DENSIFY")
    for index, code in enumerate(model.operatorCodes):
        if _opcode_name(schema, code) == densify:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode = densify
    code.deprecatedBuiltinCode = min(densify, 127)
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _store_sparse(schema, model, graph, tensor_index: int, values: np.ndarray, opcode: int):
    """A sparse copy of tensor `tensor_index` and the DENSIFY op that restores it."""
    original = graph.tensors[tensor_index]
    rows = values.reshape(-1, values.shape[-1])
    nonzero = rows != 0
    segments = np.concatenate([[0], np.cumsum(nonzero.sum(axis=1))]).astype(np.int64)
    indices = np.nonzero(nonzero)[1].astype(np.int64)
    stored = rows[nonzero]

    dims = []
    for size in values.shape[:-1]:
        dim = schema.DimensionMetadataT()
        dim.format = schema.DimensionType.DENSE
        dim.denseSize = int(size)
        dims.append(dim)
    last = schema.DimensionMetadataT()
    last.format = schema.DimensionType.SPARSE_CSR
    last.arraySegmentsType, last.arraySegments = _index_vector(schema, segments)
    last.arrayIndicesType, last.arrayIndices = _index_vector(schema, indices)
    dims.append(last)
    sparsity = schema.SparsityParametersT()
    sparsity.traversalOrder = list(range(values.ndim))
    sparsity.blockMap = []
    sparsity.dimMetadata = dims

    buffer = schema.BufferT()
    buffer.data = np.frombuffer(stored.astype(values.dtype.newbyteorder("<")).tobytes(), np.uint8)
    model.buffers.append(buffer)
    tensor = schema.TensorT()
    tensor.shape = list(original.shape)
    tensor.type = original.type
    tensor.buffer = len(model.buffers) - 1
    tensor.name = (original.name or b"weights") + b"_sparse"
    tensor.sparsity = sparsity
    graph.tensors.append(tensor)
    _release(model, original)  # now written by DENSIFY

    op = schema.OperatorT()
    op.opcodeIndex = opcode
    op.inputs = [len(graph.tensors) - 1]
    op.outputs = [tensor_index]
    return op


def _index_vector(schema, values: np.ndarray):
    top = int(values.max()) if values.size else 0
    for limit, kind, klass, dtype in (
        (255, schema.SparseIndexVector.Uint8Vector, schema.Uint8VectorT, np.uint8),
        (65535, schema.SparseIndexVector.Uint16Vector, schema.Uint16VectorT, np.uint16),
        (2**31 - 1, schema.SparseIndexVector.Int32Vector, schema.Int32VectorT, np.int32),
    ):
        if top <= limit:
            vector = klass()
            vector.values = values.astype(dtype)
            return kind, vector
    raise UserError("a weight tensor is too large to store sparse")


def check_same_outputs(first: bytes, second: bytes, label: str) -> None:
    """Both models run on the host runtime and agree on a seeded random input."""
    from edgeprune.tflite.runner import TFLiteRunner

    outputs = []
    for content in (first, second):
        try:
            runner = TFLiteRunner(content, label=label)
            rng = np.random.default_rng(0)
            feeds = [rng.random((1, *s.shape[1:]), dtype=np.float32) for s in runner.inputs]
            outputs.append([np.asarray(o, np.float64) for o in _as_list(runner.run(*feeds))])
        except UserError as exc:
            raise UserError(f"{label}: the rewritten model does not run: {exc}") from None
    for a, b in zip(*outputs, strict=True):
        if a.shape != b.shape or not np.allclose(a, b, rtol=1e-4, atol=1e-5):
            raise UserError(f"{label}: the dense and sparse storage give different outputs")


def _as_list(result) -> list:
    if isinstance(result, dict):
        return list(result.values())
    if isinstance(result, list | tuple):
        return list(result)
    return [result]
