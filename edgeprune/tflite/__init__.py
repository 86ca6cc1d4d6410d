"""Convert + quantize, flatbuffer inspection, and running/evaluating `.tflite` models.

Nothing here imports TensorFlow at import time; each function imports it when it needs it.
"""

from __future__ import annotations

from edgeprune.tflite.conversion import ConvertReport, convert
from edgeprune.tflite.evaluation import (
    EvaluationReport,
    Parity,
    evaluate,
    output_parity,
    top_k_accuracy,
)
from edgeprune.tflite.flatbuffer import read_model
from edgeprune.tflite.graph import (
    DimensionMetadata,
    Operator,
    Quantization,
    Signature,
    Sparsity,
    Subgraph,
    Tensor,
    TFLiteModel,
)
from edgeprune.tflite.inspection import (
    inspect_keras_file,
    inspect_keras_model,
    inspect_model,
    inspect_saved_model,
    inspect_tflite,
    tensor_stats,
)
from edgeprune.tflite.options import IO_TYPES, QUANTIZE_MODES, ConvertOptions, EvaluateOptions
from edgeprune.tflite.predictors import load_predictor
from edgeprune.tflite.runner import ModelRunError, TensorSpec, TFLiteRunner

__all__ = [
    "IO_TYPES",
    "QUANTIZE_MODES",
    "ConvertOptions",
    "ConvertReport",
    "DimensionMetadata",
    "EvaluateOptions",
    "EvaluationReport",
    "ModelRunError",
    "Operator",
    "Parity",
    "Quantization",
    "Signature",
    "Sparsity",
    "Subgraph",
    "TFLiteModel",
    "TFLiteRunner",
    "Tensor",
    "TensorSpec",
    "convert",
    "evaluate",
    "inspect_keras_file",
    "inspect_keras_model",
    "inspect_model",
    "inspect_saved_model",
    "inspect_tflite",
    "load_predictor",
    "output_parity",
    "read_model",
    "tensor_stats",
    "top_k_accuracy",
]
