"""`edgeprune quant-report`: which layers int8 hurts, and what keeping them float is worth.

Three measurements, each by the tool made for it:
1. per-layer error of the int8 model against float: TF's QuantizationDebugger
   (`tflite.quant_debug`), worst first;
2. the task metric of the float model, the full-int8 model and the selective model (the
   worst `keep` layers left float, made by `convert --keep-float`): the recovery is paired
   on the same validation samples (`stats.accuracy.accuracy_drop`: paired bootstrap + McNemar);
3. latency of the full-int8 and the selective model benched side by side on each device
   through the ordinary bench path (they land in the results store), as the ratio
   selective p50 / int8 p50 with its interval (`results.tables.comparison`).

4. each layer's share of the int8 model's latency on each device: its one-layer int8 model
   measured there through adapt's latency table (`workflows.layer_latency`; cached, so a
   second report, or an `adapt --quantize int8` before it, measures nothing new).
"""

from __future__ import annotations

import glob as globbing
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from device_agents.integrity import sha256_file
from edgeprune.data import Dataset
from edgeprune.errors import UserError
from edgeprune.fleet.artifacts import load_model
from edgeprune.fleet.options import BenchOptions, DeployOptions
from edgeprune.models import model_format
from edgeprune.paths import cache_dir
from edgeprune.results.store import ResultsStore
from edgeprune.results.tables import comparison, p50_interval
from edgeprune.stats.accuracy import accuracy_drop
from edgeprune.tasks.outputs import keras_outputs, resolve_task
from edgeprune.tflite.conversion import convert
from edgeprune.tflite.evaluation import dataset_for
from edgeprune.tflite.options import CALIBRATION_SAMPLES, QuantReportOptions
from edgeprune.tflite.predictors import KerasPredictor, TFLitePredictor
from edgeprune.tflite.quant_debug import LayerError, quant_debug
from edgeprune.tflite.sources import open_source
from edgeprune.workflows.bench import (
    DEFAULT_STORE,
    DeviceRef,
    open_store,
    record_bench,
    resolve_devices,
)
from edgeprune.workflows.layer_latency import LayerShares, ShareSettings, layer_shares

SHARE_NOTE = (
    "share: the op's layers' part of the summed time of the model's layers, each measured "
    "alone as a one-layer int8 model on {device} (invoke overhead removed; fused layers count "
    "in the layer before them)"
)


@dataclass
class LatencyCost:
    """The selective model's p50 against the full-int8 one on one device (same run)."""

    device: str
    threads: int
    int8_p50_ms: float | None
    selective_p50_ms: float | None
    slowdown: float | None  # selective p50 / int8 p50 (> 1: keeping float costs time)
    slowdown_ci: list[float] | None
    verdict: str | None  # for the selective model: faster | slower | indistinguishable
    int8_p50_ci_ms: list[float] | None = None
    selective_p50_ci_ms: list[float] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Selective:
    """The selective model: which layers stayed float, its metrics, recovery and cost."""

    keep_float: list[str]
    float_layers: list[str]
    path: str
    metrics: dict[str, float] | None
    recovered_points: float | None = None  # classification: top-1 points won back vs int8
    recovered_ci: list[float] | None = None
    mcnemar_p: float | None = None
    latency: list[LatencyCost] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["latency"] = [c.to_dict() for c in self.latency]
        return data


@dataclass
class QuantReport:
    model: str
    dataset: str
    sort_metric: str
    samples: int
    calibration_samples: int
    layers: list[LayerError]  # the `top` worst
    quantized_ops: int
    int8_path: str
    task: str | None = None
    metric: str | None = None  # the task's deciding metric
    metric_unit: str | None = None
    float_metrics: dict[str, float] | None = None
    int8_metrics: dict[str, float] | None = None
    selective: Selective | None = None
    run_id: int | None = None
    layer_latency: list[LayerShares] = field(default_factory=list)  # one per device measured
    notes: list[str] = field(default_factory=list)
    store: ResultsStore | None = None

    def to_dict(self) -> dict[str, Any]:
        """What `edgeprune quant-report --json` prints."""
        return {
            "model": self.model,
            "dataset": self.dataset,
            "sort_metric": self.sort_metric,
            "samples": self.samples,
            "calibration_samples": self.calibration_samples,
            "quantized_ops": self.quantized_ops,
            "layers": [
                {**e.to_dict(), "latency_share": self._share(e.layers)} for e in self.layers
            ],
            "int8_path": self.int8_path,
            "task": self.task,
            "metric": self.metric,
            "metric_unit": self.metric_unit,
            "float_metrics": self.float_metrics,
            "int8_metrics": self.int8_metrics,
            "selective": self.selective.to_dict() if self.selective else None,
            "run_id": self.run_id,
            "layer_latency": [shares.to_dict() for shares in self.layer_latency],
            "db": str(self.store.path)
            if self.store is not None and self.store.persistent
            else None,
            "notes": list(self.notes),
        }

    def _share(self, layers: list[str]) -> float | None:
        """The op's share of the layers' time on the first device that has one."""
        for shares in self.layer_latency:
            share = shares.share_of(layers)
            if share is not None:
                return share
        return None


def check_model(model: str | os.PathLike[str], options: QuantReportOptions | None = None) -> Path:
    """The Keras file to report on (a .tflite has lost the float layers to compare with),
    checked with the options before anything is loaded or any device is looked up."""
    if options is not None and options.data is None:
        raise UserError(
            "quant-report needs data: the int8 model is calibrated on its training samples and "
            "the debugger runs its validation samples (digits, an .npz or an image folder)",
            params=("data",),
        )
    kind = model_format(model)
    if kind != "keras":
        raise UserError(
            f"{str(model)!r} is a {kind} model; quant-report compares int8 with float layer by "
            "layer and needs the Keras model (.keras/.h5) it is converted from"
        )
    return Path(model)


def default_work_dir(model: Path) -> Path:
    """Where the int8 and selective files go, keyed by the model's sha256."""
    return cache_dir() / "quant-report" / sha256_file(model)[:16]


def quant_report(
    model: str | os.PathLike[str],
    *,
    options: QuantReportOptions | None = None,
    devices: Sequence[DeviceRef] | None = None,
    store: ResultsStore | str | os.PathLike[str] | None = DEFAULT_STORE,
    work_dir: str | os.PathLike[str] | None = None,
    deploy: DeployOptions | None = None,
    dataset: Dataset | None = None,
    **keywords: Any,
) -> QuantReport:
    """Per-layer int8 error, worst first; float vs int8 vs selective metric; latency cost.

    `options` or the `QuantReportOptions` fields as keywords (`data` may be a loaded
    `Dataset` through `dataset`). Devices default to `local`; `store` as `bench_models`.
    Data without labels gives the layer errors only (a note says the rest needs labels).
    """
    if dataset is not None and "data" not in keywords and options is None:
        keywords["data"] = dataset.name
    chosen = QuantReportOptions.from_parts(options, keywords)
    path = check_model(model, chosen)
    source = open_source(path, chosen.custom_objects)
    assert chosen.data is not None  # check_model refuses options without data
    data = dataset if dataset is not None else dataset_for(chosen.data, source.input_shapes[0])
    calibration = chosen.calibration_samples or CALIBRATION_SAMPLES
    folder = Path(work_dir) if work_dir else default_work_dir(path)
    folder.mkdir(parents=True, exist_ok=True)

    debug = quant_debug(source, data, calibration, chosen.samples)
    int8_path = folder / f"{path.stem}.int8.tflite"
    convert(path, int8_path, quantize="int8", dataset=data, calibration_samples=calibration)
    report = QuantReport(
        model=str(path),
        dataset=data.name,
        sort_metric=debug.sort_metric,
        samples=debug.samples,
        calibration_samples=debug.calibration_samples,
        layers=debug.layers[: chosen.top],
        quantized_ops=len(debug.layers),
        int8_path=str(int8_path),
        notes=list(debug.notes),
    )
    if not data.has_labels:
        report.notes.append(
            f"dataset {data.name!r} has no labels: the layer errors only; the accuracy part "
            "(float vs int8, what keeping layers float recovers) needs labels (y)"
        )
        return report
    assert source.keras_model is not None  # check_model admits Keras files only
    task = resolve_task(data, keras_outputs(source.keras_model), None, repr(source.label))
    float_out = KerasPredictor(source.keras_model, source.label).predict_all(data.x_val)
    int8_out = TFLitePredictor(int8_path, str(int8_path)).predict_all(data.x_val)
    report.task, report.metric, report.metric_unit = task.name, task.primary.name, task.primary.unit
    report.float_metrics = task.score(data, float_out)
    report.int8_metrics = task.score(data, int8_out)
    keep = _worst_layers(debug.layers, chosen.keep)
    if not keep:
        return report
    selective_path = folder / f"{path.stem}.keep-float.tflite"
    made = convert(
        path,
        selective_path,
        quantize="int8",
        dataset=data,
        calibration_samples=calibration,
        keep_float=[globbing.escape(name) for name in keep],
    )
    selective_out = TFLitePredictor(selective_path, str(selective_path)).predict_all(data.x_val)
    selective = Selective(
        keep_float=keep,
        float_layers=made.float_layers,
        path=str(selective_path),
        metrics=task.score(data, selective_out),
    )
    if task.name == "classification":
        labels = np.asarray(data.y_val)
        drop = accuracy_drop(
            np.argmax(int8_out[0], axis=1) == labels,
            np.argmax(selective_out[0], axis=1) == labels,
            None,
        )
        selective.recovered_points = -drop.drop_points
        selective.recovered_ci = [-drop.ci[1], -drop.ci[0]]
        selective.mcnemar_p = drop.mcnemar_p
    else:
        report.notes.append("the recovery has an interval for classification only")
    report.selective = selective
    results = open_store(store)
    bench = BenchOptions.create(runs=chosen.runs)
    models = [load_model(int8_path), load_model(selective_path)]
    measured_on = resolve_devices(devices)
    run_id, group = record_bench(
        models, measured_on, bench, results, deploy=deploy, command="quant-report"
    )
    report.run_id, report.store = run_id, results
    for failed in group.failed:
        report.notes.append(f"{failed.device.name}: {failed.message}")
    rows = results.measurements([run_id], with_json=True)
    selective.latency = _costs(models[0].sha256, models[1].sha256, rows)
    report.layer_latency = _layer_latency(source.keras_model, measured_on, rows, results)
    known = [shares.device for shares in report.layer_latency if shares.error is None]
    if known:
        report.notes.append(SHARE_NOTE.format(device=known[0]))
    for shares in report.layer_latency:
        if shares.error is not None:
            report.notes.append(f"{shares.device}: each layer's share is not known: {shares.error}")
    return report


def _layer_latency(
    keras_model: Any, devices: Sequence[Any], rows: list[dict[str, Any]], store: ResultsStore
) -> list[LayerShares]:
    """Each layer's share on every device the int8 model was measured on (its runtime and
    thread count key the table)."""
    measured = []
    for device in devices:
        row = next((r for r in rows if r["device"] == device.name and r["status"] == "ok"), None)
        if row is None:
            continue
        runtime = {"runtime": row["runtime"], "runtime_version": row["runtime_version"]}
        settings = ShareSettings(threads=int(row["threads"]))
        measured.append(layer_shares(keras_model, device, store, runtime, settings))
    return measured


def _worst_layers(errors: list[LayerError], keep: int) -> list[str]:
    """The first Keras layer of each of the `keep` worst ops that name one."""
    chosen: list[str] = []
    for error in errors:
        if len(chosen) >= keep:
            break
        if error.layer is not None and error.layer not in chosen:
            chosen.append(error.layer)
    return chosen


def _costs(int8_sha: str, selective_sha: str, rows: list[dict[str, Any]]) -> list[LatencyCost]:
    by_key = {(r["model_sha256"], r["device"], r["threads"]): r for r in rows}
    costs = []
    for device, threads in sorted({(r["device"], r["threads"]) for r in rows}):
        a = by_key.get((int8_sha, device, threads))
        b = by_key.get((selective_sha, device, threads))
        errors = [r.get("error") or "error" for r in (a, b) if r and r["status"] != "ok"]
        if a is None or b is None:
            errors.append("one of the two models has no measurement")
        if errors:
            costs.append(
                LatencyCost(device, threads, None, None, None, None, None, error="; ".join(errors))
            )
            continue
        assert a is not None and b is not None
        compared = comparison(a, b)  # speedup = int8 p50 / selective p50
        speedup, ci = compared["speedup"], compared["speedup_ci"]
        costs.append(
            LatencyCost(
                device=device,
                threads=threads,
                int8_p50_ms=a["p50_ms"],
                selective_p50_ms=b["p50_ms"],
                slowdown=1.0 / speedup if speedup else None,
                slowdown_ci=[1.0 / ci[1], 1.0 / ci[0]] if ci and ci[0] and ci[1] else None,
                verdict=compared["verdict"],
                int8_p50_ci_ms=p50_interval(a),
                selective_p50_ci_ms=p50_interval(b),
            )
        )
    return costs
