"""Signatures, candidate widths and the lookup table's cache, on a real traced model."""

from __future__ import annotations

import numpy as np
import pytest

from edgeprune.adapt.signatures import layer_signatures
from edgeprune.adapt.table import LatencyTable, write_layer_tflite
from edgeprune.adapt.widths import candidate_widths, prune_to_widths, trace_model
from edgeprune.tflite.runner import TFLiteRunner

from .conftest import build_tiny_model


def test_candidate_widths_are_multiples_above_the_minimum():
    assert candidate_widths(64, 8, 8) == [56, 48, 40, 32, 24, 16, 8]
    assert candidate_widths(20, 8, 8) == [16, 8]
    assert candidate_widths(64, 8, 20) == [56, 48, 40, 32, 24]
    assert candidate_widths(8, 8, 8) == []


def test_signatures_follow_the_keep_mask_and_match_the_pruned_model():
    traced = trace_model(build_tiny_model())
    assert sorted(g.name for g in traced.prunable()) == ["conv_a", "conv_b"]
    full = {s.path: s for s in layer_signatures(traced.graph, traced.keep_mask({}))}
    cut = {s.path: s for s in layer_signatures(traced.graph, traced.keep_mask({"conv_a": 16}))}
    assert set(full) == {"conv_a", "conv_b", "pool", "logits"}  # BN and ReLU fuse
    assert cut["conv_a"].config["filters"] == 16
    assert cut["conv_b"].input_shapes == ((1, 8, 8, 16),)
    assert full["conv_b"].input_shapes == ((1, 8, 8, 32),)
    assert cut["logits"].key == full["logits"].key
    assert cut["conv_b"].key != full["conv_b"].key

    pruned = prune_to_widths(traced, {"conv_a": 16})
    rebuilt = trace_model(pruned)
    again = {s.path: s.key for s in layer_signatures(rebuilt.graph, rebuilt.keep_mask({}))}
    assert again == {path: s.key for path, s in cut.items()}  # predicted is what is built


def _host_latency(paths):
    """A real measurement on this host's TFLite runtime (the device's stand-in is the host)."""
    import time

    from edgeprune.adapt.table import Latency

    out = []
    for path in paths:
        runner = TFLiteRunner(path, label=path.name)
        x = [np.zeros((1, *s.shape[1:]), dtype=np.float32) for s in runner.inputs]
        times = []
        for _ in range(20):
            start = time.perf_counter()
            runner.run(*x)
            times.append((time.perf_counter() - start) * 1000)
        out.append(Latency(float(np.median(times)), None, None, len(times)))
    return out


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_table_measures_each_signature_once_and_keeps_it(tmp_path, quantize):
    traced = trace_model(build_tiny_model())
    signatures = layer_signatures(traced.graph, traced.keep_mask({}))
    context = {"device": "local", "runtime": "x", "threads": 1, "quantize": quantize}
    table = LatencyTable(tmp_path / "table.db", context)
    entries = len(signatures) + 1  # and the invoke overhead
    assert table.fill(signatures + signatures, _host_latency, quantize) == entries
    assert table.fill(signatures, _host_latency, quantize) == 0
    again = LatencyTable(tmp_path / "table.db", context)
    assert len(again) == entries and not again.missing(signatures)
    assert again.layer_sum(signatures) == pytest.approx(table.layer_sum(signatures))
    other = LatencyTable(tmp_path / "table.db", {**context, "threads": 2})
    assert len(other.missing(signatures)) == len(signatures)
    overhead = table.overhead_ms
    raw = sum(table.entry(s).median_ms for s in signatures)
    assert table.layer_sum(signatures) == pytest.approx(
        sum(max(table.entry(s).median_ms - overhead, 0.0) for s in signatures)
    )
    assert 0 <= table.layer_sum(signatures) < raw


def test_int8_entries_are_int8_models(tmp_path):
    traced = trace_model(build_tiny_model())
    conv = next(
        s for s in layer_signatures(traced.graph, traced.keep_mask({})) if s.path == "conv_b"
    )
    from edgeprune.tflite.flatbuffer import read_model

    fp32 = read_model(write_layer_tflite(conv, tmp_path / "f.tflite", "none"), name="f")
    int8 = read_model(write_layer_tflite(conv, tmp_path / "q.tflite", "int8"), name="q")
    assert "QUANTIZE" not in fp32.op_counts()
    assert "QUANTIZE" in int8.op_counts()


def test_the_cut_decays_and_never_passes_the_target():
    from edgeprune.adapt.netadapt import step_budget
    from edgeprune.adapt.options import AdaptOptions

    options = AdaptOptions.create(target_speedup=2.0, step_reduction=0.1, step_decay=0.5)
    assert step_budget(options, 0, 10.0, 5.0) == pytest.approx(9.0)
    assert step_budget(options, 1, 10.0, 5.0) == pytest.approx(9.5)
    assert step_budget(options, 0, 5.2, 5.0) == 5.0


def test_a_wide_width_measured_faster_by_noise_is_not_proposed(tmp_path):
    """conv_a's entries at width 24 came out faster than at 16 (as noise can have it): the
    group's curve is raised to a running max over widths, so the budget that 24 met only by
    luck is met by 8, the widest width whose narrower widths all meet it too."""
    from edgeprune.adapt.netadapt import Predictor, group_curves, propose
    from edgeprune.adapt.options import AdaptOptions
    from edgeprune.adapt.signatures import build_layer_model, overhead_signature
    from edgeprune.adapt.table import Calibration, Latency
    from edgeprune.keras_stats import model_stats

    traced = trace_model(build_tiny_model())
    options = AdaptOptions.create(target_speedup=2.0, granularity=8, min_filters=8)

    def signatures(widths):
        return layer_signatures(traced.graph, traced.keep_mask(widths))

    full = {s.key for s in signatures({})}
    lucky = {s.key for s in signatures({"conv_a": 24})} - full
    entries = {overhead_signature().key: (overhead_signature(), Latency(0.001, None, None, 9))}
    for widths in [{}] + [{g: w} for g in ("conv_a", "conv_b") for w in (24, 16, 8)]:
        for s in signatures(widths):
            ms = 0.0 if s.key in lucky else 0.001 + model_stats(build_layer_model(s)).macs * 1e-6
            entries[s.key] = (s, Latency(ms, None, None, 9))
    table = LatencyTable(tmp_path / "table.db", {"device": "test"})
    table.record(list(entries.values()))

    def no_measuring(paths):
        raise AssertionError(f"every entry is in the table, yet {len(paths)} were measured")

    predictor = Predictor(table, no_measuring, "none", Calibration(0.0, 1.0))
    raw = {w: predictor.predict(signatures({"conv_a": w})) for w in (24, 16, 8)}
    assert raw[24] < raw[8] < raw[16]  # the noise the search must not act on
    budget = (raw[8] + raw[16]) / 2

    curve = group_curves(traced, predictor, options)["conv_a"]
    assert [curve[w] for w in (8, 16, 24)] == [raw[8], raw[16], raw[16]]
    proposals, at_minimum = propose(traced, predictor, budget, options)
    chosen = {p.group: (p.width, p.predicted_ms) for p in proposals}
    assert chosen["conv_a"] == (8, raw[8]) and not at_minimum


def test_the_calibration_fits_relative_error_and_falls_back_to_slope_one():
    """A line the points lie on is found exactly. Off a line, the fit weighs relative error:
    its worst miss in percent is smaller than the absolute least-squares line's, which
    sacrifices the small cut for the large model. A slope that is not positive (the cuts
    measured no faster) falls back to slope 1 through the input model."""
    from edgeprune.adapt.table import Calibration

    exact = Calibration.fit([(s, 0.02 + 0.9 * s) for s in (4.0, 2.0, 1.0)])
    assert (exact.intercept_ms, exact.slope) == (pytest.approx(0.02), pytest.approx(0.9))
    assert exact.points[0] == (4.0, 0.02 + 0.9 * 4.0)

    points = [(10.0, 10.0), (5.0, 4.6), (1.0, 1.4)]
    sums, measured = np.array(points).T
    absolute = np.polyfit(sums, measured, 1)[::-1]
    relative = Calibration.fit(points)

    def worst(intercept, slope):
        return max(abs(intercept + slope * s - m) / m for s, m in points)

    assert worst(relative.intercept_ms, relative.slope) < worst(*absolute) - 0.05

    flat = Calibration.fit([(4.0, 3.0), (2.0, 3.1), (1.0, 3.2)])
    assert (flat.slope, flat.intercept_ms) == (1.0, pytest.approx(-1.0))
    assert Calibration.fit([(4.0, 3.0)]).predict(4.0) == pytest.approx(3.0)


class _Device:
    """A device whose one-layer models cost 1 ms (the invoke) plus `cost[key]`, and a whole
    model 0.5 ms more than its layers; during the first `busy` passes of entries the layer
    `slow_key` runs 3x slower (a busy host slows some layers more than others)."""

    def __init__(self, models, busy: int):
        unique = {s.key: s for m in models for s in m}
        self.models, self.busy = models, busy
        self.cost = {key: 1.0 + 0.5 * i for i, key in enumerate(unique)}
        self.slow_key = models[0][0].key
        self.entry_passes = self.model_passes = 0

    def truth(self, model) -> float:
        return 0.5 + sum(self.cost[s.key] for s in model)

    def entries(self, paths):
        from edgeprune.adapt.table import Latency

        self.entry_passes += 1
        busy = self.entry_passes <= self.busy
        out = []
        for path in paths:
            key = next((k for k in self.cost if k.startswith(path.stem)), None)
            cost = 0.0 if key is None else self.cost[key]  # None: the invoke overhead
            out.append(
                Latency(1.0 + cost * (3 if busy and key == self.slow_key else 1), None, None, 5)
            )
        return out

    def whole(self):
        self.model_passes += 1
        return [self.truth(m) for m in self.models]


@pytest.mark.parametrize("busy, remeasured, fits", [(0, 0, True), (1, 1, True), (9, 2, False)])
def test_a_calibration_that_misses_its_models_is_measured_again(tmp_path, busy, remeasured, fits):
    """One slow pass of the entries (a busy device) makes the line miss its own models; the
    next pass measures them again and keeps the lower medians, so the line fits exactly. A
    device busy on every pass is measured `remeasures` times more, then reported as not
    fitting."""
    from edgeprune.adapt.calibrate import FIT_TOLERANCE, settle_calibration

    traced = trace_model(build_tiny_model())
    models = [
        layer_signatures(traced.graph, traced.keep_mask(w))
        for w in ({}, {"conv_a": 16}, {"conv_b": 16}, {"conv_a": 16, "conv_b": 16})
    ]
    device = _Device(models, busy)
    table = LatencyTable(tmp_path / "table.db", {"device": "local", "quantize": "none"})
    settled = settle_calibration(
        table,
        models,
        [device.truth(m) for m in models],
        measure_entries=device.entries,
        measure_models=device.whole,
        quantize="none",
        remeasures=2,
    )
    assert (settled.remeasured, settled.fits) == (remeasured, fits)
    assert device.model_passes == remeasured and device.entry_passes == 1 + remeasured
    error = settled.calibration.max_error
    assert (error <= FIT_TOLERANCE) == fits
    if busy == 1:  # the slow entries were replaced, in the file too
        assert error == pytest.approx(0, abs=1e-9)
        kept = LatencyTable(tmp_path / "table.db", table.context)
        assert kept.entry(models[0][0]).median_ms == pytest.approx(
            1 + device.cost[models[0][0].key]
        )


def test_remeasuring_keeps_the_lower_median_of_each_entry(tmp_path):
    from edgeprune.adapt.table import Latency

    traced = trace_model(build_tiny_model())
    signatures = layer_signatures(traced.graph, traced.keep_mask({}))
    table = LatencyTable(tmp_path / "table.db", {"device": "local", "quantize": "none"})
    table.fill(signatures, lambda paths: [Latency(2.0, None, None, 5) for _ in paths], "none")
    answers = iter([1.5, 3.0])  # the first entry faster, every other one slower

    def again(paths):
        first = next(answers)
        return [Latency(first if i == 0 else 3.0, None, None, 5) for i in range(len(paths))]

    assert table.remeasure(signatures, again, "none") == 1
    assert table.entry(signatures[0]).median_ms == 1.5
    assert all(table.entry(s).median_ms == 2.0 for s in signatures[1:])
