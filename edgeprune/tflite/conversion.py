"""Keras / SavedModel -> `.tflite`, quantized and optionally with weights stored sparse.

Sparse storage (`EXPERIMENTAL_SPARSITY`, DENSIFY ops in the graph) is what lets XNNPACK
take its sparse path. Measured with TF 2.21 + ai-edge-litert 2.3 on the digits CNN:

| quantize | sparse storage converts | runs under the default XNNPACK delegate |
|---|---|---|
| none     | yes (DENSIFY, fp32 values)  | yes |
| float16  | yes (DENSIFY, fp16 values)  | yes |
| dynamic  | yes (DENSIFY, int8 values)  | no: "failed to delegate CONV_2D" |
| int8     | yes (DENSIFY, int8 values)  | no: "failed to delegate FULLY_CONNECTED" |

XNNPACK's sparse path is fp32/fp16 only anyway, so the automatic choice stores weights
sparse only for none/float16; an explicit request for the others is tried and, like every
conversion, must pass a smoke run on the host runtime before anything is written.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune import _tf
from edgeprune._tf import quiet_native_output as quiet
from edgeprune.artifacts import artifact
from edgeprune.data import Dataset, check_fits
from edgeprune.errors import UserError
from edgeprune.files import check_output_path
from edgeprune.manifest import manifest_path
from edgeprune.tasks.base import Task
from edgeprune.tasks.outputs import keras_outputs, resolve_task
from edgeprune.tflite.evaluation import dataset_for
from edgeprune.tflite.flatbuffer import read_model
from edgeprune.tflite.options import (
    CALIBRATION_SAMPLES,
    ConvertOptions,
)
from edgeprune.tflite.predictors import KerasPredictor, TFLitePredictor
from edgeprune.tflite.quant_debug import (
    SelectiveInt8,
    configure_int8,
    float_layers,
    keras_layer_names,
    selective_int8,
)
from edgeprune.tflite.runner import ModelRunError, TFLiteRunner
from edgeprune.tflite.source_parity import source_parity
from edgeprune.tflite.sources import ConversionSource, open_source
from edgeprune.tflite.weight_bytes import check_weight_bytes

SPARSE_AUTO_THRESHOLD = 0.5
SPARSE_RUNNABLE = ("none", "float16")


@dataclass
class ConvertReport:
    output: str
    manifest: str
    source: str
    quantize: str
    io: str
    sparse_weights: bool
    sparse_weights_choice: str  # "auto" | "requested" | "refused"
    sparse_weights_reason: str
    source_sparsity: float
    sparse_tensors: int
    densify_ops: int
    size_bytes: int
    gzip_bytes: int
    seconds: float
    accuracy: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    parity: dict[str, Any] | None = None  # max |diff| of the outputs vs the source
    weight_bytes: int = 0  # constant bytes in the .tflite (checked against the source's)
    keep_float: list[str] = field(default_factory=list)  # the globs asked for
    float_layers: list[str] = field(default_factory=list)  # layers left float (read from the file)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_options(
    quantize: str,
    io: str,
    has_dataset: bool,
    calibration_samples: int | None = None,
    keep_float: list[str] | None = None,
) -> ConvertOptions:
    """Fail fast, before any model is loaded, on options that cannot work together."""
    options = ConvertOptions.create(
        quantize=quantize, io=io, calibration_samples=calibration_samples, keep_float=keep_float
    )
    if quantize in ("int8", "int16x8") and not has_dataset:
        raise UserError(
            f"quantize {quantize} needs calibration data; give `data` (digits, an .npz or an "
            "image folder)",
            params=("quantize", "data"),
        )
    return options


def convert(
    source: str | os.PathLike[str] | Any,
    output: str | os.PathLike[str],
    *,
    options: ConvertOptions | None = None,
    dataset: Dataset | str | os.PathLike[str] | None = None,
    **keywords: Any,
) -> ConvertReport:
    """Convert `source` to `output` (.tflite) plus its manifest; nothing is written on failure.

    Give `options` or the `ConvertOptions` fields as keywords; `dataset` may be a loaded
    `Dataset` (otherwise `data` names one). `sparse_weights=None` stores weights sparse
    when the prunable kernels are >= 50 % zero and the quantization can run sparse weights
    (none, float16).
    """
    start = time.perf_counter()
    chosen = ConvertOptions.from_parts(options, keywords)
    dataset = chosen.data if dataset is None else dataset
    check_options(
        chosen.quantize,
        chosen.io,
        dataset is not None,
        chosen.calibration_samples,
        chosen.keep_float,
    )
    quantize, io = chosen.quantize, chosen.io
    calibration_samples = chosen.calibration_samples or CALIBRATION_SAMPLES
    target = check_output_path(output, (".tflite",), "output model")
    if manifest_path(target).is_dir():
        raise UserError(
            f"{manifest_path(target)} is a directory, but the manifest goes there; move it away"
        )
    model = open_source(source, chosen.custom_objects)
    qat = is_qat_source(model)
    data = None
    task: Task | str | None = None
    if dataset is not None:
        data = dataset_for(dataset, model.input_shapes[0] if model.input_shapes else ())
        _check_data(model, data, quantize)
        task = _task_for(model, data, chosen)
    sparse, choice, reason = _decide_sparse(
        chosen.sparse_weights, quantize, _sparsest_kernel(model)
    )
    recorded: dict[str, Any] = {
        "quantize": quantize,
        "io": io,
        "sparse_weights": sparse,
        "sparse_weights_choice": choice,
        "dataset": data.name if data is not None else None,
        "calibration_samples": (
            calibration_samples if quantize in ("int8", "int16x8") and not qat else None
        ),
        "qat": qat,
        "keep_float": list(chosen.keep_float),
    }
    selective: SelectiveInt8 | None = None
    if chosen.keep_float:
        assert data is not None  # check_options guarantees it
        selective = selective_int8(model, data, calibration_samples, chosen.keep_float)
        content = selective.content
    else:
        content = _run_converter(model, quantize, sparse, io, data, calibration_samples)

    notes: list[str] = qat_notes(qat, quantize)
    with artifact(target) as art:
        tmp = art.path
        tmp.write_bytes(content)
        parsed = read_model(tmp, name=str(target))
        weight_bytes = _check_weights(model, parsed, quantize)
        kept_float = _kept_float(model, parsed, selective)
        _smoke_run(tmp, str(target), quantize, sparse, choice)
        sparse_tensors = sum(1 for t in parsed.main.tensors if t.sparsity is not None)
        densify_ops = parsed.op_counts().get("DENSIFY", 0)
        if sparse and sparse_tensors == 0:
            notes.append("the converter found no weight tensor worth storing sparse")
        accuracy = (
            _accuracy(tmp, str(target), model, data, task, chosen) if data is not None else None
        )
        parity = source_parity(tmp, str(target), model, data.x_val if data is not None else None)
        manifest = art.describe(
            step="convert",
            options=recorded,
            source=model.path,
            sparsity=model.sparsity,
            quantization=quantize,
            accuracy=accuracy,
            extra={
                "sparse_weights_reason": reason,
                "sparse_tensors": sparse_tensors,
                "densify_ops": densify_ops,
                "source_kind": model.kind,
                "source_label": model.label,
                "parity": parity,
                "weight_bytes": weight_bytes,
                "source_weight_bytes": model.weight_bytes,
                "float_layers": kept_float,
                "keep_float_matched": selective.matched_layers if selective else [],
            },
        )
    written = manifest_path(target)
    return ConvertReport(
        output=str(target),
        manifest=str(written),
        source=model.label,
        quantize=quantize,
        io=io,
        sparse_weights=sparse,
        sparse_weights_choice=choice,
        sparse_weights_reason=reason,
        source_sparsity=float(model.sparsity["overall"]),
        sparse_tensors=sparse_tensors,
        densify_ops=densify_ops,
        size_bytes=manifest.size_bytes,
        gzip_bytes=manifest.gzip_bytes,
        seconds=time.perf_counter() - start,
        accuracy=accuracy,
        notes=notes,
        parity=parity,
        weight_bytes=weight_bytes,
        keep_float=list(chosen.keep_float),
        float_layers=kept_float,
    )


def is_qat_source(model: ConversionSource) -> bool:
    """Whether the source is a QAT model (edgeprune's fake-quant layers): its int8
    conversion takes every range from the FakeQuant ops, not from calibration."""
    if model.keras_model is None:
        return False
    from edgeprune.qat_layers import is_qat_model

    return is_qat_model(model.keras_model)


def qat_notes(qat: bool, quantize: str) -> list[str]:
    """What the report says about a QAT source."""
    if not qat:
        return []
    if quantize == "int8":
        return [
            "QAT model: the int8 ranges are the ones it learned (data is not used to calibrate)"
        ]
    return [
        f"QAT model converted with quantize {quantize}: its fake quantization stays in the "
        "float graph; convert with quantize int8 to get the int8 model it was trained for"
    ]


def _kept_float(model: ConversionSource, parsed: Any, selective: SelectiveInt8 | None) -> list[str]:
    """The Keras layers that compute in float in the written file (selective int8 only)."""
    if selective is None or model.keras_model is None:
        return []
    return float_layers(parsed, keras_layer_names(model.keras_model))


def _check_weights(model: ConversionSource, parsed: Any, quantize: str) -> int:
    """The output's weight bytes; refuses a .tflite that lost its source's variables."""
    return check_weight_bytes(
        model.weight_bytes, parsed, quantize, float(model.sparsity.get("overall", 0.0)), model.label
    )


def _check_data(model: ConversionSource, data: Dataset, quantize: str) -> None:
    if len(model.input_shapes) != 1:
        raise UserError(
            f"{model.label!r} has {len(model.input_shapes)} inputs; --data supports one-input models"
        )
    check_fits(data, model.input_shapes[0], repr(model.label))
    if quantize in ("int8", "int16x8") and len(data.x_train) == 0:
        raise UserError(f"dataset {data.name!r} has no training samples to calibrate with")


def _sparsest_kernel(model: ConversionSource) -> float:
    """The zero fraction of the sparsest prunable kernel.

    Per kernel, not overall: a policy such as `xnnpack` prunes only the 1x1 convs, and a
    large dense classifier must not talk the converter out of storing those sparse (the
    converter itself stores only tensors that are sparse enough).
    """
    layers = model.sparsity.get("layers") or {}
    return max(layers.values(), default=model.sparsity.get("overall", 0.0))


def _decide_sparse(requested: bool | None, quantize: str, sparsity: float) -> tuple[bool, str, str]:
    """(store sparse?, how it was decided, why) — the why goes to the report and manifest."""
    if requested is not None:
        why = "--sparse-weights" if requested else "--dense-weights"
        return requested, "requested", f"{why} given"
    if sparsity < SPARSE_AUTO_THRESHOLD:
        return (
            False,
            "auto",
            (f"no prunable kernel is {SPARSE_AUTO_THRESHOLD:.0%} zero (at most {sparsity:.0%})"),
        )
    if quantize not in SPARSE_RUNNABLE:
        return (
            False,
            "refused",
            (
                f"kernels are up to {sparsity:.0%} zero, but weights stay dense for {quantize}: XNNPACK's "
                "sparse path is fp32/fp16 only and its delegate cannot prepare sparse-stored "
                f"{quantize} weights"
            ),
        )
    return (
        True,
        "auto",
        f"prunable kernels are up to {sparsity:.0%} zero (>= {SPARSE_AUTO_THRESHOLD:.0%})",
    )


def _run_converter(
    model: ConversionSource,
    quantize: str,
    sparse: bool,
    io: str,
    data: Dataset | None,
    calibration_samples: int,
) -> bytes:
    tf = _tf.tf()
    converter = model.converter()
    optimizations = [] if quantize == "none" else [tf.lite.Optimize.DEFAULT]
    if sparse:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    converter.optimizations = optimizations
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize in ("int8", "int16x8"):
        assert data is not None  # check_options guarantees it
        samples = data.calibration(calibration_samples).astype(np.float32)
        configure_int8(converter, samples, quantize, sparse)
        if io == "int8":
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    try:
        with quiet() as captured, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Statistics for quantized inputs were expected"
            return bytes(converter.convert())
    except Exception as exc:  # the converter raises ConverterError, ValueError, RuntimeError...
        raise UserError(
            f"TFLite conversion of {model.label!r} ({quantize}) failed: {_converter_message(exc, captured)}"
        ) from None


def _converter_message(exc: Exception, captured: list[str]) -> str:
    lines = [line.strip() for line in [*str(exc).splitlines(), *captured] if line.strip()]
    for line in lines:
        if "error:" in line.lower():
            return line[line.lower().index("error:") + 6 :].strip()[:300]
    return (lines[0] if lines else type(exc).__name__)[:300]


def _smoke_run(path: Path, label: str, quantize: str, sparse: bool, choice: str) -> None:
    """One invoke under the default delegate: a model that cannot run is never written."""
    try:
        runner = TFLiteRunner(path, label=label)
        runner.run(*(np.zeros((1, *s.shape[1:]), dtype=np.float32) for s in runner.inputs))
    except ModelRunError as exc:
        hint = (
            f"; convert with --dense-weights (sparse {quantize} weights are the cause)"
            if sparse and choice == "requested"
            else ""
        )
        raise UserError(f"the converted model does not run: {exc}{hint}") from None


def _task_for(model: ConversionSource, data: Dataset, fields: ConvertOptions) -> Task | str | None:
    """The task that scores the converted model, decided before converting; a note (str)
    when there is none: x-only data (calibration alone) or labels no task fits unasked;
    None for a SavedModel source (decided from the .tflite's outputs). A task the user
    named that does not fit is an error, not a note."""
    if not data.has_labels:
        if fields.task is not None:
            raise UserError(
                f"task {fields.task} needs labels, but dataset {data.name!r} has only x; "
                "give data with y (or drop task: calibration needs x alone)",
                params=("task", "data"),
            )
        return f"dataset {data.name!r} has no labels: calibration only, no accuracy"
    if model.keras_model is None:
        return None
    try:
        return resolve_task(data, keras_outputs(model.keras_model), fields, repr(model.label))
    except UserError as exc:
        if fields.task is not None:
            raise  # the user named it: a mismatch is an error before converting
        return f"no accuracy: {exc}"


def _accuracy(
    path: Path,
    label: str,
    model: ConversionSource,
    data: Dataset,
    task: Task | str | None,
    fields: ConvertOptions | None = None,
) -> dict[str, Any]:
    """The task's metrics of the new .tflite (and of the source, for the drop) on the
    validation split; classification keeps its `top1`/`top5`/`source_top1` keys."""
    predictor = TFLitePredictor(path, label)
    if task is None:
        try:
            task = resolve_task(data, predictor.outputs, fields, repr(label))
        except UserError as exc:
            if fields is not None and fields.task is not None:
                raise  # the user named it: a mismatch is an error (nothing is written)
            task = f"no accuracy: {exc}"
    if isinstance(task, str):
        return {"dataset": data.name, "note": task}
    outputs = predictor.predict_all(data.x_val)
    metrics = task.score(data, outputs)
    result: dict[str, Any] = {
        "dataset": data.name,
        "split": "validation",
        "samples": len(data.x_val),
        "task": task.name,
        "metrics": metrics,
        "metric_info": task.to_dict()["metrics"],
    }
    classification = task.name == "classification"
    if classification:
        result["top1"] = metrics["top1"]
        if "top5" in metrics:
            result["top5"] = metrics["top5"]
    if model.keras_model is not None:
        source_outputs = KerasPredictor(model.keras_model, model.label).predict_all(data.x_val)
        source_metrics = task.score(data, source_outputs)
        result["source_metrics"] = source_metrics
        if classification:
            result["source_top1"] = source_metrics["top1"]
    return result
