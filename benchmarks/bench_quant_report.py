"""quant-report on a PTQ-hard model: keeping its worst layer float recovers accuracy; at what cost.

Why the model is hard for post-training int8: an MLP on sklearn digits (Flatten → Dense 64
`hidden` → Dense 32 `mid` → Dense 10) is trained normally, then every `hidden` unit gets a
weight of OUTLIER × (its largest weight) on the input pixels that are 0 in every digits image
(the left column and corners). In float those weights multiply 0 and change nothing (the float
model's outputs are bit-identical). In int8, the weight scale of each output channel is set
by its largest weight, so the real weights keep only a few of the 255 levels and the layer's
output is mostly rounding: PTQ loses many points. Real models get such weights from inputs
that are constant in the training data (no gradient ever shrinks them without weight decay).

Measured side by side in one run (`edgeprune.workflows.quant_report`): the float, full-int8
and selective (worst layer of the report kept float) models on the same 359 validation
samples — the recovery with its paired interval (bootstrap + McNemar, `stats.accuracy`) —
and the full-int8 and selective .tflite benched interleaved on `local`: latency ratio
selective p50 / int8 p50 with its interval.

int16x8 on the board: the demo CNN (width 32) converted int8 and int16x8, benched
interleaved on `local` with XNNPACK on (int16x8 / int8 p50, with its interval) and again
with XNNPACK off: an int16x8 p50 that does not move when XNNPACK is switched off means the
delegate took none of its ops (those two are separate runs: no interval).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import Ratio

OUTLIER = 150.0
EPOCHS = 40
RUNS = 300


def ptq_hard_model(data: Any) -> Any:
    """The MLP above, trained, with the outlier weights on the always-zero pixels."""
    from edgeprune import _tf

    keras = _tf.keras()
    keras.utils.set_random_seed(0)
    inputs = keras.Input(data.sample_shape, name="digits")
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = keras.layers.Dense(64, activation="relu", name="hidden")(x)
    x = keras.layers.Dense(32, activation="relu", name="mid")(x)
    outputs = keras.layers.Dense(data.num_classes, name="logits")(x)
    model = keras.Model(inputs, outputs, name="ptq_hard_mlp")
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(data.x_train, data.y_train, epochs=EPOCHS, batch_size=64, verbose=0)
    every = np.concatenate([data.x_train, data.x_val]).reshape(
        len(data.x_train) + len(data.x_val), -1
    )
    dead = np.flatnonzero(np.abs(every).max(axis=0) == 0)
    layer = model.get_layer("hidden")
    kernel, bias = layer.get_weights()
    peak = np.abs(kernel).max(axis=0)  # per output channel
    signs = np.where(np.arange(len(dead))[:, None] % 2 == 0, 1.0, -1.0)
    kernel[dead, :] = OUTLIER * peak[None, :] * signs
    layer.set_weights([kernel, bias])
    return model, dead


def int16x8_ratios(data: Any, folder: Path) -> list[Ratio]:
    """int16x8 against int8 under XNNPACK, and int16x8 with XNNPACK on against off."""
    from edgeprune.demo import build_demo_model
    from edgeprune.fleet.options import BenchOptions
    from edgeprune.results.tables import comparison
    from edgeprune.tflite.conversion import convert
    from edgeprune.workflows.bench import bench_models

    model = build_demo_model(data.sample_shape, data.num_classes, width=32)
    int8, int16 = folder / "cnn.int8.tflite", folder / "cnn.int16x8.tflite"
    convert(model, int8, quantize="int8", dataset=data, calibration_samples=50)
    convert(model, int16, quantize="int16x8", dataset=data, calibration_samples=50)
    rows: dict[bool, dict[str, dict[str, Any]]] = {}
    for xnnpack in (True, False):
        run = bench_models(
            [int8, int16], options=BenchOptions.create(runs=RUNS, xnnpack=xnnpack), store=None
        )
        run.raise_for_failures()
        stored = run.store.measurements([run.run_id], with_json=True)
        rows[xnnpack] = {r["model_name"]: r for r in stored}
    on, off = rows[True], rows[False]
    compared = comparison(on[int16.name], on[int8.name])  # speedup = int16x8 p50 / int8 p50
    return [
        Ratio(
            name="int16x8 p50 / int8 p50 under XNNPACK on local (demo CNN w32)",
            measured=float(compared["speedup"]),
            detail={
                "ci": compared["speedup_ci"],
                "int8_verdict": compared["verdict"],
                "runs": RUNS,
            },
        ),
        Ratio(
            name="int16x8 p50 with XNNPACK / without (1.0: XNNPACK takes none of its ops)",
            measured=on[int16.name]["p50_ms"] / off[int16.name]["p50_ms"],
            detail={
                "int8_with_over_without": on[int8.name]["p50_ms"] / off[int8.name]["p50_ms"],
                "agent_warnings": sorted(on[int16.name].get("warnings") or []),
                "note": "two runs (XNNPACK on, off): no interval",
            },
        ),
    ]


def run() -> list[Ratio]:
    from edgeprune.data import load_dataset
    from edgeprune.stats.accuracy import accuracy_drop
    from edgeprune.tflite.predictors import KerasPredictor, TFLitePredictor
    from edgeprune.workflows.quant_report import quant_report

    data = load_dataset("digits")
    model, dead = ptq_hard_model(data)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ptq_hard.keras"
        model.save(path)
        report = quant_report(
            path, data="digits", dataset=data, store=None, work_dir=Path(tmp), runs=RUNS
        )
        labels = np.asarray(data.y_val)
        float_correct = KerasPredictor(model, "float").predict(data.x_val).argmax(1) == labels
        int8_out = TFLitePredictor(Path(report.int8_path), "int8").predict(data.x_val)
        ptq = accuracy_drop(float_correct, int8_out.argmax(1) == labels, None)
        int16 = int16x8_ratios(data, Path(tmp))
    selective = report.selective
    assert selective is not None and report.float_metrics and report.int8_metrics
    assert selective.metrics is not None and selective.recovered_ci is not None
    (cost,) = selective.latency
    worst = report.layers[0]
    common = {
        "model": "ptq_hard_mlp (digits MLP, outlier weights on always-zero pixels)",
        "dead_pixels": len(dead),
        "outlier": OUTLIER,
        "worst_layer": worst.layer,
        "worst_relative_error": worst.metrics[report.sort_metric],
        "second_relative_error": report.layers[1].metrics[report.sort_metric],
        "float_top1": report.float_metrics["top1"],
        "int8_top1": report.int8_metrics["top1"],
        "selective_top1": selective.metrics["top1"],
        "samples": len(labels),
    }
    return [
        Ratio(
            name="PTQ int8 top-1 drop vs float (points, paired)",
            measured=ptq.drop_points,
            goal=2.0,
            higher_is_better=True,
            detail={**common, "drop_ci": list(ptq.ci), "mcnemar_p": ptq.mcnemar_p},
        ),
        Ratio(
            name=f"keep-float {', '.join(selective.keep_float)}: top-1 recovered vs int8 (points)",
            measured=float(selective.recovered_points or 0.0),
            goal=0.0,
            higher_is_better=True,
            detail={
                "recovered_ci": selective.recovered_ci,
                "mcnemar_p": selective.mcnemar_p,
                "float_layers": selective.float_layers,
            },
        ),
        Ratio(
            name="keep-float latency: selective p50 / int8 p50 on local (1 thread)",
            measured=float(cost.slowdown or float("nan")),
            detail={
                "slowdown_ci": cost.slowdown_ci,
                "verdict": cost.verdict,
                "int8_p50_ms": cost.int8_p50_ms,
                "selective_p50_ms": cost.selective_p50_ms,
                "runs": RUNS,
            },
        ),
        *int16,
    ]
