"""Never a weightless `.tflite`: the output must hold about the weight bytes of its source.

A converter that keeps variables as VAR_HANDLE/READ_VARIABLE ops (as `from_saved_model` does
for a `tf.saved_model.save` directory) "succeeds" with a file of a few KB whose graph reads
weights that are not there. So every conversion compares the constant bytes of its output
with the variable bytes of its input, scaled by what the quantization and sparse storage may
legitimately save, and refuses a file far below that.
"""

from __future__ import annotations

from edgeprune.errors import UserError
from edgeprune.tflite.flatbuffer import TFLiteModel

BYTES_PER_VALUE_DIVISOR = {"none": 1, "float16": 2, "dynamic": 4, "int8": 4}
"""How many times smaller each quantization may store a float32 weight."""
MIN_KEPT_FRACTION = 0.10
"""Below this fraction of the expected weight bytes the output is taken to have lost them."""
SMALL_SOURCE_BYTES = 1024
"""Sources with fewer variable bytes than this are not judged (a few biases, no weights)."""


def tflite_weight_bytes(model: TFLiteModel) -> int:
    """Bytes of the constant tensors (weights, biases, tables) in every subgraph."""
    total = 0
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            if model.is_constant(tensor):
                total += len(model.buffers[tensor.buffer])
    return total


def expected_weight_bytes(source_bytes: int, quantize: str, sparsity: float) -> float:
    """The least a faithful conversion keeps: values after quantization and zeros dropped."""
    divisor = BYTES_PER_VALUE_DIVISOR.get(quantize, 4)
    kept = max(0.0, 1.0 - float(sparsity))
    return source_bytes * kept / divisor


def check_weight_bytes(
    source_bytes: int, output: TFLiteModel, quantize: str, sparsity: float, label: str
) -> int:
    """The output's weight bytes; a UserError naming both sizes when far fewer than expected."""
    stored = tflite_weight_bytes(output)
    if source_bytes < SMALL_SOURCE_BYTES:
        return stored
    expected = expected_weight_bytes(source_bytes, quantize, sparsity)
    if stored < MIN_KEPT_FRACTION * expected:
        raise UserError(
            f"the conversion of {label!r} holds {stored:,} bytes of weights but its source has "
            f"{source_bytes:,} bytes of variables (at least {expected:,.0f} expected for "
            f"{quantize}); the variables were not frozen into the .tflite, so nothing was written"
        )
    return stored
