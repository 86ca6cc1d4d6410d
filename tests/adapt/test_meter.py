"""`DeviceMeter` on the real `local` device: what a table entry is of its runs.

An entry is its one-layer model's fastest run scaled into the reference conditions by the
reference's fastest runs (a process that runs beside a neighbour's load is slow throughout,
and its median carries that load); whole models keep their medians scaled by the reference's
medians. Checked against the rows the agent stored for the same jobs.
"""

from __future__ import annotations

import pytest

from edgeprune.results.store import ResultsStore
from edgeprune.workflows.adapt import MODEL_COMMAND, TABLE_COMMAND, DeviceMeter


def _rows_of_last(store: ResultsStore, command: str) -> dict[str, dict]:
    run = next(r for r in store.runs() if r["command"] == command)
    return {row["model_name"]: row for row in store.measurements([run["id"]])}


def test_entries_are_fastest_runs_and_whole_models_medians(tiny_model_path, isolated):
    from edgeprune.adapt.options import AdaptOptions
    from edgeprune.adapt.signatures import layer_signatures
    from edgeprune.adapt.table import write_layer_tflite
    from edgeprune.adapt.widths import prune_to_widths, trace_model
    from edgeprune.models import load_keras_model
    from edgeprune.tflite.conversion import convert
    from edgeprune.workflows.bench import resolve_devices

    store = ResultsStore(isolated / "results.db")
    options = AdaptOptions.create(
        target_speedup=2, data="digits", device="local", table_runs=20, runs=20
    )
    meter = DeviceMeter(resolve_devices(["local"])[0], store, options)
    reference = isolated / "input.tflite"
    convert(tiny_model_path, reference)
    first = meter.models([reference])[0]
    meter.set_reference(reference, float(first["p50_ms"]), float(first["min_ms"]))

    traced = trace_model(load_keras_model(tiny_model_path))
    signatures = layer_signatures(traced.graph, traced.keep_mask({}))[:2]
    layers = [write_layer_tflite(s, isolated / f"{s.key[:16]}.tflite", "none") for s in signatures]
    entries = meter.table(layers)
    rows = _rows_of_last(store, TABLE_COMMAND)
    factor = float(first["min_ms"]) / rows["input.tflite"]["min_ms"]
    for path, entry in zip(layers, entries, strict=True):
        row = rows[path.name]
        assert entry.median_ms == pytest.approx(row["min_ms"] * factor)
        assert row["min_ms"] < row["p50_ms"]  # so a median would have given another entry
        assert entry.low_ms is None and entry.runs == 20

    cut = isolated / "cut.tflite"
    convert(prune_to_widths(traced, {"conv_a": 16}), cut)
    whole = meter.model(cut)
    rows = _rows_of_last(store, MODEL_COMMAND)
    factor = float(first["p50_ms"]) / rows["input.tflite"]["p50_ms"]
    assert whole.median_ms == pytest.approx(rows["cut.tflite"]["p50_ms"] * factor)
