"""`adapt` end to end on the `local` device: real measurements, real fine-tuning, real files.

One model, one table file and one results DB go through three runs: a first run
interrupted (KeyboardInterrupt, as Ctrl-C raises it) during its second iteration, a re-run
that resumes from it and goes on until every group is at its minimum width (the target is
out of reach), and a run into another output that decides exactly as the second. The table
is written by the test (entries growing with each layer's MACs), so which cut is predicted
faster never hangs on the noise in a tiny layer's measurement; whole models are measured
for real. (A table measured for real, and reused, is tested in tests/compute.)
"""

from __future__ import annotations

import json

import pytest

from edgeprune.adapt.netadapt import plain_map
from edgeprune.errors import UserError
from edgeprune.results.store import ResultsStore
from edgeprune.workflows.adapt import TABLE_COMMAND, adapt_model_file

FAST = {
    "data": "digits",
    "device": "local",
    "short_epochs": 0,
    "long_epochs": 0,
    "table_runs": 5,
    "runs": 10,
    "granularity": 16,
    "min_filters": 16,
}


def _table_runs(db) -> int:
    return sum(1 for run in ResultsStore(db).runs() if run["command"] == TABLE_COMMAND)


def write_mac_table(model_path, table, options) -> int:
    """Every entry the runs can ask for (both groups at 32 or 16 filters, and the invoke
    overhead), as 1 µs plus 1 ns per MAC of the one-layer model, in the context `local`'s
    runtime gives: wider is always slower, and no entry is measured."""
    from device_agents.runtimes import select_runtime
    from edgeprune.adapt.options import AdaptOptions
    from edgeprune.adapt.signatures import build_layer_model, layer_signatures, overhead_signature
    from edgeprune.adapt.table import Latency, LatencyTable
    from edgeprune.adapt.widths import trace_model
    from edgeprune.keras_stats import model_stats
    from edgeprune.models import load_keras_model
    from edgeprune.workflows.adapt import table_context

    runtime = select_runtime()
    chosen = AdaptOptions.create(**options)
    context = table_context(
        "local", {"runtime": runtime.name, "runtime_version": runtime.version}, chosen
    )
    traced = trace_model(load_keras_model(model_path))
    signatures = {overhead_signature().key: overhead_signature()}
    for widths in ({}, {"conv_a": 16}, {"conv_b": 16}, {"conv_a": 16, "conv_b": 16}):
        for signature in layer_signatures(traced.graph, traced.keep_mask(widths)):
            signatures[signature.key] = signature
    entries = []
    for signature in signatures.values():
        macs = model_stats(build_layer_model(signature)).macs
        entries.append((signature, Latency(0.001 + macs * 1e-9, None, None, 15)))
    LatencyTable(table, context).record(entries)
    return len(entries)


def test_adapt_resumes_stops_at_minimum_width_and_reuses_the_table(tiny_model_path, isolated):
    db, table = isolated / "results.db", isolated / "table.db"
    out = isolated / "adapted.keras"
    # out of reach: stops when nothing can go; the table's entries are MAC counts, which no
    # line through whole models measured here need fit, so it is never measured again
    options = {**FAST, "target_latency": 1e-6, "table_remeasures": 0}
    assert write_mac_table(tiny_model_path, table, options) == 11

    calls = []

    def interrupted_map(fn, items):  # Ctrl-C while the second iteration's proposals run
        calls.append(items)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return plain_map(fn, items)

    with pytest.raises(KeyboardInterrupt):
        adapt_model_file(
            tiny_model_path, out, store=db, table=table, map_fn=interrupted_map, **options
        )
    # every proposal's fine-tune decays its rate to 0, as the long one does
    assert {i["finetune"]["learning_rate_decay"] for i in calls[0]} == {"cosine"}
    workdir = isolated / "adapted.adapt"
    first = json.loads((workdir / "trajectory.json").read_text())["iterations"]
    assert [i["iteration"] for i in first] == [1] and not out.exists()
    assert not (workdir / "iter-02" / "iteration.json").exists()
    assert _table_runs(db) == 0  # the table has every entry
    kept = (workdir / "iter-01" / "model.keras").stat().st_mtime_ns

    second = adapt_model_file(
        tiny_model_path, out, store=db, table=table, map_fn=plain_map, **options
    )
    assert second.iterations[0] == first[0]  # resumed, not redone
    assert (workdir / "iter-01" / "model.keras").stat().st_mtime_ns == kept
    assert [i["iteration"] for i in second.iterations] == [1, 2]
    assert second.stop_reason == "no group can be cut further" and not second.target_met
    widths = {g["name"]: (g["before"], g["after"], g["at_minimum"]) for g in second.groups}
    assert widths["conv_a"] == (32, 16, True) and widths["conv_b"] == (32, 16, True)
    assert any("groups at their minimum width: conv_a, conv_b" in n for n in second.notes)
    assert second.final["median_ms"] > 0 and second.final["ci_ms"] is not None
    assert second.final["speedup"] is not None
    trajectory = json.loads((isolated / "adapted.adapt" / "trajectory.json").read_text())
    assert len(trajectory["iterations"]) == 2
    assert (isolated / "adapted.adapt" / "trajectory.svg").read_text().startswith("<?xml")
    assert out.exists() and (isolated / "adapted.keras.json").exists()

    third = adapt_model_file(  # long_epochs changes no iteration
        tiny_model_path,
        isolated / "again.keras",
        store=db,
        table=table,
        map_fn=plain_map,
        **{**options, "long_epochs": 1},
    )
    assert third.table["table_jobs"] == 0 and third.table["measured_now"] == 0
    assert _table_runs(db) == 0
    assert [i["widths"] for i in third.iterations] == [i["widths"] for i in second.iterations]
    document = third.to_dict()
    for key in ("target", "baseline", "final", "accuracy", "groups", "iterations", "validation"):
        assert key in document
    accuracy = document["accuracy"]
    assert 0 <= accuracy["top1_after"] <= 1 and accuracy["top1_before"] > 0.3
    assert accuracy["long_epochs"] == 1  # and by default with the rate decayed to 0
    assert accuracy["learning_rate"] == {"initial": 1e-3, "decay": "cosine", "steps": 45}


def test_adapt_fails_before_measuring_when_the_data_does_not_fit(tiny_model_path, isolated):
    import numpy as np

    wrong = isolated / "wrong.npz"
    np.savez(wrong, x=np.zeros((20, 4, 4, 3), np.float32), y=np.arange(20) % 2)
    db = isolated / "results.db"
    with pytest.raises(UserError, match="4, 4, 3"):
        adapt_model_file(
            tiny_model_path,
            isolated / "o.keras",
            store=db,
            map_fn=plain_map,
            **{**FAST, "data": str(wrong), "target_speedup": 1.5},
        )
    assert not db.exists() or not ResultsStore(db).runs()
    assert not (isolated / "o.adapt").exists()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"data": "digits"}, "give one target: target_latency MS or target_speedup X"),
        (
            {"data": "digits", "target_latency": 1.0, "target_speedup": 2.0},
            "give one target",
        ),
        ({"data": "digits", "target_speedup": 0.5}, "target_speedup: Input should be greater"),
        ({"data": "digits", "target_speedup": 2.0, "quantize": "float16"}, "quantize 'float16'"),
        ({"target_speedup": 2.0}, "give data DATASET"),
        (
            {"data": "digits", "target_speedup": 2.0, "learning_rate_decay": "step"},
            "^learning_rate_decay 'step' is not one of constant, cosine",
        ),
        ({"data": "digits", "target_speedup": 2.0, "device": "nosuch"}, "nosuch"),
    ],
)
def test_bad_input_is_one_user_error(tiny_model_path, isolated, values, message):
    with pytest.raises(UserError, match=message):
        adapt_model_file(tiny_model_path, isolated / "o.keras", store=None, **values)
    assert not (isolated / "o.adapt").exists()


def test_cli_names_the_flags(run_cli, tiny_model_path, isolated):
    outcome = run_cli("adapt", tiny_model_path, "-o", isolated / "o.keras", "--data", "digits")
    assert outcome.code != 0
    assert "--target-latency" in outcome.err and "--target-speedup" in outcome.err
    assert "Traceback" not in outcome.err


def test_the_loop_stops_on_the_measured_latency_not_the_predicted(tiny_model_path, isolated):
    """A board 2.5 times as slow as the table says: one cut is predicted to meet the target,
    but it measures above it, so the loop goes on (budgets in measured terms) until a kept
    model measures at the target: both groups cut, "target met"."""
    from edgeprune.adapt.netadapt import Predictor, adapt_loop
    from edgeprune.adapt.options import AdaptOptions
    from edgeprune.adapt.signatures import layer_signatures
    from edgeprune.adapt.table import Calibration, Latency, LatencyTable
    from edgeprune.adapt.widths import trace_model
    from edgeprune.adapt.workdir import Workdir
    from edgeprune.models import load_keras_model

    table_path = isolated / "table.db"
    options = AdaptOptions.create(**{**FAST, "target_speedup": 2.0, "step_reduction": 0.5})
    write_mac_table(tiny_model_path, table_path, {**FAST, "target_speedup": 2.0})
    from device_agents.runtimes import select_runtime
    from edgeprune.workflows.adapt import table_context

    runtime = select_runtime()
    context = table_context(
        "local", {"runtime": runtime.name, "runtime_version": runtime.version}, options
    )

    def no_measuring(paths):
        raise AssertionError(f"every entry is in the table, yet {len(paths)} were measured")

    predictor = Predictor(
        LatencyTable(table_path, context), no_measuring, "none", Calibration(0, 1000)
    )
    traced = trace_model(load_keras_model(tiny_model_path))

    def predicted(widths):
        return predictor.predict(layer_signatures(traced.graph, traced.keep_mask(widths)))

    def slower_than_the_table(path, _iteration):
        model = trace_model(load_keras_model(path))
        ms = 2.5 * predictor.predict(layer_signatures(model.graph, model.keep_mask({})))
        return Latency(ms, ms, ms, 10)

    both = predicted({"conv_a": 16, "conv_b": 16})
    one = max(predicted({"conv_a": 16}), predicted({"conv_b": 16}))
    target = 2.5 * both
    assert one <= target < 2.5 * min(predicted({"conv_a": 16}), predicted({"conv_b": 16}))

    outcome = adapt_loop(
        tiny_model_path,
        Workdir.open(isolated / "run.adapt", {"test": 1}),
        options,
        predictor=predictor,
        target_ms=target,
        measure_model=slower_than_the_table,
        source_ms=2.5 * predicted({}),
    )
    assert outcome.stop_reason == "target met"
    assert outcome.widths == {"conv_a": 16, "conv_b": 16, "logits": 10}
