"""Per-layer int8 error and selective int8, both through TensorFlow's QuantizationDebugger.

`tf.lite.experimental.QuantizationDebugger` instruments the int8 model with NumericVerify
ops: each quantized op's output is compared with the float op run on the same (dequantized)
input, so one layer's error is not blurred by the errors before it. Its statistics
(`layer_statistics`, `layer_statistics_dump`) are the numbers reported here; edgeprune adds
only the guide's RMSE/scale column and a direct-compare relative error (mean |int8 − float| /
mean |float|, computed by the debugger through `layer_direct_compare_metrics`), and maps each
quantized tensor back to the Keras layers fused into it.

Selective int8 is the debugger's documented route too: the output tensors of the ops to keep
float go to `QuantizationDebugOptions(denylisted_nodes=...)` and
`get_nondebug_quantized_model()` writes the model without the debug ops.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgeprune import _tf
from edgeprune._tf import quiet_native_output as quiet
from edgeprune.data import Dataset
from edgeprune.errors import UserError
from edgeprune.tflite.flatbuffer import read_model
from edgeprune.tflite.graph import TFLiteModel
from edgeprune.tflite.sources import ConversionSource

SORT_METRIC = "relative_error"
"""Worst first by mean |int8 − float| / mean |float| of the op's output: unlike the raw
squared error it does not depend on the tensor's scale, and unlike RMSE/scale (≈ 0.289 for
any well-rounded tensor) it sees a tensor whose wide range leaves its typical values only a
few int8 steps."""

_SUFFIX = re.compile(r"_\d+$")
_NOT_COMPUTE = ("QUANTIZE", "DEQUANTIZE")


@dataclass
class LayerError:
    """One quantized op of the int8 model and the debugger's error statistics for it."""

    tensor: str  # the op's output tensor (the name `denylisted_nodes` takes)
    op: str
    layers: list[str]  # Keras layers fused into this op, in model order
    metrics: dict[str, float]
    scale: float
    zero_point: int

    @property
    def layer(self) -> str | None:
        """The first Keras layer of the op (the conv of conv+BN+ReLU), None when unknown."""
        return self.layers[0] if self.layers else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "layer": self.layer}


@dataclass
class QuantDebugReport:
    """Every quantized op's error, worst first by `sort_metric`."""

    layers: list[LayerError]
    sort_metric: str
    samples: int  # validation samples the debugger ran
    calibration_samples: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sort_metric": self.sort_metric,
            "samples": self.samples,
            "calibration_samples": self.calibration_samples,
            "layers": [e.to_dict() for e in self.layers],
            "notes": list(self.notes),
        }


@dataclass
class SelectiveInt8:
    """A selectively quantized model: its bytes and what stayed float."""

    content: bytes
    keep_float: list[str]  # the globs
    matched_layers: list[str]  # Keras layers the globs matched
    denylisted_nodes: list[str]  # op outputs handed to the debugger


def representative(samples: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    """A representative-dataset factory: one float32 sample per yield, batch of one."""
    values = np.asarray(samples, dtype=np.float32)

    def generate() -> Iterator[list[np.ndarray]]:
        for sample in values:
            yield [sample[np.newaxis]]

    return generate


def configure_int8(
    converter: Any, samples: np.ndarray, ops: str = "int8", sparse: bool = False
) -> Any:
    """Set `converter` up for full-integer PTQ calibrated on `samples` (what `convert` uses).

    `ops` "int16x8" asks for 16-bit activations with 8-bit weights instead.
    """
    tf = _tf.tf()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if sparse:
        converter.optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    converter.representative_dataset = representative(samples)
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        if ops == "int16x8"
        else tf.lite.OpsSet.TFLITE_BUILTINS_INT8
    ]
    return converter


def keras_layer_names(model: Any) -> list[str]:
    """Every layer name of a Keras model, nested models' layers included, in model order."""
    names: list[str] = []

    def walk(layer: Any) -> None:
        for inner in getattr(layer, "layers", []) or []:
            names.append(inner.name)
            walk(inner)

    walk(model)
    return names


def layers_of(names: Iterable[str], layer_names: list[str]) -> list[str]:
    """The Keras layers a TFLite tensor name speaks of, in model order.

    Keras 3 traces each layer under a name scope `<model>_1/<layer>_1/...`; a fused op's
    name joins several such paths with ';'.
    """
    known = set(layer_names)
    found: set[str] = set()
    for name in names:
        for part in name.split(";"):
            for segment in part.split("/"):
                for candidate in (segment, _SUFFIX.sub("", segment)):
                    if candidate in known:
                        found.add(candidate)
                        break
    return [n for n in layer_names if n in found]


def _debugger(source: ConversionSource, samples: np.ndarray, options: Any = None) -> Any:
    """The debugger built from the same int8 converter as `convert --quantize int8`."""
    tf = _tf.tf()
    converter = configure_int8(source.converter(), samples)
    try:
        with quiet(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return tf.lite.experimental.QuantizationDebugger(
                converter=converter,
                debug_dataset=representative(samples[:1]),
                debug_options=options,
            )
    except Exception as exc:  # the converter raises ConverterError, ValueError, RuntimeError...
        lines = str(exc).strip().splitlines()
        reason = lines[0][:300] if lines else type(exc).__name__
        raise UserError(
            f"the quantization debugger could not quantize {source.label!r}: {reason}"
        ) from None


def _relative_error(f: np.ndarray, q: np.ndarray, scale: float, zero_point: int) -> float:
    """mean |dequantized int8 − float| / mean |float| (the debugger passes q raw)."""
    dequantized = (q.astype(np.float32) - zero_point) * scale
    magnitude = float(np.mean(np.abs(f)))
    return float(np.mean(np.abs(dequantized - f))) / magnitude if magnitude > 0 else 0.0


def _statistics(debugger: Any) -> list[dict[str, str]]:
    buffer = io.StringIO()
    debugger.layer_statistics_dump(buffer)
    return list(csv.DictReader(io.StringIO(buffer.getvalue())))


def _producers(model: TFLiteModel) -> dict[int, list[str]]:
    """Output tensor index -> names of the op's constant inputs (its weights), which name
    the layer when the output does not (a model's last op outputs `StatefulPartitionedCall`)."""
    graph = model.main
    names: dict[int, list[str]] = {}
    for op in graph.operators:
        weights = [
            graph.tensors[i].name
            for i in op.inputs
            if i >= 0 and model.is_constant(graph.tensors[i])
        ]
        for index in op.outputs:
            names[index] = weights
    return names


def _layer_errors(
    rows: list[dict[str, str]], debug_model: bytes, layer_names: list[str]
) -> list[LayerError]:
    producers = _producers(read_model(debug_model, name="debug model"))
    errors = []
    for row in rows:
        tensor = row["tensor_name"]
        layers = layers_of([tensor], layer_names) or layers_of(
            producers.get(int(row["tensor_idx"]), []), layer_names
        )
        skip = {"op_name", "tensor_idx", "tensor_name", "scale", "zero_point"}
        metrics = {k: float(v) for k, v in row.items() if k not in skip and v not in ("", None)}
        scale = float(row["scale"])
        if "mean_squared_error" in metrics and scale > 0:
            metrics["rmse_over_scale"] = float(np.sqrt(metrics["mean_squared_error"]) / scale)
        errors.append(
            LayerError(
                tensor, row["op_name"], layers, metrics, scale, int(float(row["zero_point"]))
            )
        )
    return errors


def quant_debug(
    source: ConversionSource,
    data: Dataset,
    calibration_samples: int,
    samples: int = 200,
) -> QuantDebugReport:
    """Per-op error of the int8 model against float on `samples` validation samples."""
    tf = _tf.tf()
    if source.keras_model is None:
        raise UserError(
            f"{source.label!r} is a SavedModel; the per-layer report needs the Keras model "
            "(.keras/.h5), whose layer names it reports"
        )
    calibration = data.calibration(calibration_samples).astype(np.float32)
    debugger = _debugger(source, calibration)
    with quiet():  # the converter logs "fully_quantize: ..." on fd 2
        debug_model = debugger.get_debug_quantized_model()
    x = np.asarray(data.x_val if len(data.x_val) else data.x_train, dtype=np.float32)[:samples]
    options = tf.lite.experimental.QuantizationDebugOptions(
        layer_debug_metrics={"mean_abs_error": lambda diff: float(np.mean(np.abs(diff)))},
        layer_direct_compare_metrics={SORT_METRIC: _relative_error},
    )
    # From the debug model's bytes the debugger keeps every tensor (preserve_all_tensors),
    # which the direct comparison needs: built from the converter it reads reused buffers.
    with quiet(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        measured = tf.lite.experimental.QuantizationDebugger(
            quant_debug_model_content=debug_model,
            debug_dataset=representative(x),
            debug_options=options,
        )
        measured.run()
    rows = _statistics(measured)
    errors = _layer_errors(rows, debug_model, keras_layer_names(source.keras_model))
    errors.sort(key=lambda e: -e.metrics.get(SORT_METRIC, 0.0))
    return QuantDebugReport(errors, SORT_METRIC, len(x), len(calibration))


def match_layers(globs: list[str], layer_names: list[str], label: str) -> list[str]:
    """The layers the globs match, in model order; a glob matching none is an error."""
    matched: set[str] = set()
    for glob in globs:
        hits = [n for n in layer_names if fnmatch.fnmatchcase(n, glob)]
        if not hits:
            shown = ", ".join(layer_names[:8]) + (", ..." if len(layer_names) > 8 else "")
            raise UserError(
                f"keep_float {glob!r} matches no layer of {label!r}; its layers: {shown}",
                params=("keep_float",),
            )
        matched.update(hits)
    return [n for n in layer_names if n in matched]


def selective_int8(
    source: ConversionSource, data: Dataset, calibration_samples: int, keep_float: list[str]
) -> SelectiveInt8:
    """The int8 model with the ops of the layers matching `keep_float` left float."""
    tf = _tf.tf()
    if source.keras_model is None:
        raise UserError(
            f"keep_float matches Keras layer names, but {source.label!r} is a SavedModel; "
            "convert the .keras/.h5 model",
            params=("keep_float",),
        )
    layer_names = keras_layer_names(source.keras_model)
    matched = match_layers(keep_float, layer_names, source.label)
    calibration = data.calibration(calibration_samples).astype(np.float32)
    debugger = _debugger(source, calibration)
    with quiet():  # the converter logs "fully_quantize: ..." on fd 2
        debug_model = debugger.get_debug_quantized_model()
    with quiet(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        debugger.run()  # one sample: only the dump's tensor names are needed
    errors = _layer_errors(_statistics(debugger), debug_model, layer_names)
    nodes = [e.tensor for e in errors if set(e.layers) & set(matched)]
    if not nodes:
        raise UserError(
            f"keep_float {', '.join(keep_float)} matches {', '.join(matched)}, which has no "
            "quantized op of its own (quantized ops belong to: "
            f"{', '.join(dict.fromkeys(e.layer for e in errors if e.layer))})",
            params=("keep_float",),
        )
    with quiet(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes)
        content = bytes(debugger.get_nondebug_quantized_model())
    return SelectiveInt8(content, list(keep_float), matched, nodes)


def float_layers(model: TFLiteModel, layer_names: list[str]) -> list[str]:
    """Keras layers whose ops compute in float in a converted model (read from its tensors)."""
    graph = model.main
    found: list[str] = []
    for op in graph.operators:
        if op.opcode in _NOT_COMPUTE or not op.outputs:
            continue
        out = graph.tensors[op.outputs[0]]
        if out.dtype == "FLOAT32":
            weights = [
                graph.tensors[i].name
                for i in op.inputs
                if i >= 0 and model.is_constant(graph.tensors[i])
            ]
            found.extend(layers_of([out.name], layer_names) or layers_of(weights, layer_names))
    return [n for n in layer_names if n in set(found)]
