"""Models as files: `convert` to `.tflite`, `inspect` what is inside, `evaluate` accuracy."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgeprune.api._params import take, with_options
from edgeprune.api.results import ConvertResult, EvaluateResult, InspectResult
from edgeprune.errors import UserError

ModelLike = Any
"""A Keras model object, a model path (.keras, .h5, SavedModel dir, .tflite), or a ConvertResult."""


def convert(
    model: ModelLike,
    output: str | os.PathLike[str],
    *,
    data: Any = None,
    options: object = None,
    **given: Any,
) -> ConvertResult:
    """Convert `model` (a Keras model object or a path) to `output` (.tflite) with its manifest.

    `data` is what the CLI's `--data` takes (calibration for int8, and accuracy);
    keywords are the fields of `ep.ConvertOptions`: quantize (none | dynamic | float16 | int8 | int16x8), keep_float (globs),
    sparse_weights (None: automatic), io, calibration_samples; `options` (an
    `ep.ConvertOptions`) gives them all at once.
    """
    from edgeprune.manifest import read_manifest
    from edgeprune.tflite.conversion import convert as convert_file
    from edgeprune.tflite.options import ConvertOptions

    values = with_options(options, given)
    data = take(values, "data", data)
    checked = ConvertOptions.create(**values)
    report = convert_file(_source(model), output, options=checked, dataset=data)
    path = Path(report.output)
    manifest = read_manifest(path)
    if manifest is None:  # convert always writes one; its absence is a bug, not the user's
        raise RuntimeError(f"{path} was written without its manifest")
    return ConvertResult(path=path, sha256=manifest.sha256, manifest=manifest, report=report)


def inspect(model: ModelLike, *, pattern: str | None = None) -> InspectResult:
    """What `edgeprune inspect --json` reports: sizes, sparsity, ops, quantization, XNNPACK path.

    `pattern` (N:M or block:RxC) also checks every weight tensor against that pattern.
    """
    source = _source(model)
    if not isinstance(source, (str, os.PathLike)):
        if pattern is not None:
            raise UserError(
                "pattern checks a model file; save the model first or leave pattern out",
                params=("pattern",),
            )
        return InspectResult(_inspect_keras(source))
    from edgeprune.xnnpack.pattern_check import check_pattern_option, pattern_section

    parsed = check_pattern_option(str(source), pattern)
    report = _inspect_file(source)
    if parsed is not None:
        report["pattern"] = pattern_section(str(source), parsed)
    return InspectResult(report)


def evaluate(
    model: ModelLike,
    data: Any,
    *,
    reference: ModelLike = None,
    batch_size: int = 64,
    task: str | None = None,
    metric: str | None = None,
    decode: str | None = None,
) -> EvaluateResult:
    """The task's metrics on `data`'s validation split (top-1/top-5 for a classifier, RMSE
    for regression, mIoU, mAP, a custom metric); with `reference`, output parity too."""
    from edgeprune.tflite.evaluation import evaluate as evaluate_model

    ref = None if reference is None else _source(reference)
    report = evaluate_model(
        _source(model),
        data,
        reference=ref,
        batch_size=batch_size,
        task=task,
        metric=metric,
        decode=decode,
    )
    return EvaluateResult(report)


def _inspect_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The inspect document of a file, XNNPACK section included (as `edgeprune inspect`)."""
    from edgeprune.workflows.inspection import inspect_model

    return inspect_model(path)


def _inspect_keras(model: Any) -> dict[str, Any]:
    from edgeprune.tflite.inspection import inspect_keras_model
    from edgeprune.xnnpack.policy import predicted_sparse_path

    report = inspect_keras_model(model)
    report["xnnpack"] = predicted_sparse_path(model)
    return {"path": None, "format": "keras", **report}


def _source(model: ModelLike) -> Any:
    """A result of another verb stands for its file (or its model)."""
    path = getattr(model, "path", None)
    if isinstance(path, Path) and hasattr(model, "sha256"):
        return path
    if hasattr(model, "report") and hasattr(model, "model") and hasattr(model.model, "layers"):
        return model.model
    return model
