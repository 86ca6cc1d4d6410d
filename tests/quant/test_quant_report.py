"""`edgeprune quant-report` / `ep.quant_report` end to end on the local agent, and its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeprune.errors import UserError


@pytest.mark.slow
def test_cli_report_end_to_end_on_local(run_cli, small_model_path, tmp_path):
    done = run_cli(
        "quant-report", small_model_path, "--data", "digits", "--samples", "20",
        "--calibration-samples", "20", "--runs", "5", "--top", "3",
        "--work-dir", tmp_path / "work", "--db", tmp_path / "r.db", "--json",
    )  # fmt: skip
    assert done.code == 0, done.err
    report = json.loads(done.out)
    assert len(report["layers"]) == 3 and report["quantized_ops"] > 3
    errors = [row["metrics"][report["sort_metric"]] for row in report["layers"]]
    assert errors == sorted(errors, reverse=True)
    worst = report["layers"][0]["layer"]
    assert report["task"] == "classification" and report["metric"] == "top1"
    assert 0 < report["float_metrics"]["top1"] <= 1 and 0 < report["int8_metrics"]["top1"] <= 1
    selective = report["selective"]
    assert selective["keep_float"] == [worst]
    assert worst in selective["float_layers"]
    low, high = selective["recovered_ci"]
    assert low <= selective["recovered_points"] <= high
    (cost,) = selective["latency"]
    assert cost["device"] == "local" and cost["error"] is None
    assert cost["int8_p50_ms"] > 0 and cost["selective_p50_ms"] > 0
    assert cost["slowdown"] == pytest.approx(
        cost["selective_p50_ms"] / cost["int8_p50_ms"], rel=0.5
    )
    assert report["db"] == str(tmp_path / "r.db") and report["run_id"] == 1
    (shares,) = report["layer_latency"]
    assert shares["device"] == "local" and shares["error"] is None, shares
    assert sum(shares["shares"].values()) == pytest.approx(1.0)
    assert all(ms >= 0 for ms in shares["layer_ms"].values())
    for row in report["layers"]:  # each shown op: its fused layers' part, measured
        assert row["latency_share"] == pytest.approx(
            sum(shares["shares"].get(name, 0.0) for name in row["layers"])
        )
    assert any(row["latency_share"] > 0 for row in report["layers"])

    text = run_cli(
        "quant-report", small_model_path, "--data", "digits", "--samples", "20",
        "--calibration-samples", "20", "--runs", "5", "--keep", "0",
        "--work-dir", tmp_path / "work2", "--db", tmp_path / "r.db",
    )  # fmt: skip
    assert text.code == 0, text.err
    assert "worst first by relative_error" in text.out and "top1: float" in text.out
    assert "keep float" not in text.out  # --keep 0: no selective model, no bench


def test_errors_are_one_line(run_cli, small_model_path, tmp_path):
    from edgeprune.tflite.conversion import convert

    tflite = tmp_path / "m.tflite"
    convert(small_model_path, tflite)
    bad = run_cli("quant-report", tflite, "--data", "digits")
    assert bad.code != 0
    assert bad.err.strip().splitlines() == [
        f"error: {str(tflite)!r} is a tflite model; quant-report compares int8 with float layer "
        "by layer and needs the Keras model (.keras/.h5) it is converted from"
    ]
    bad = run_cli("quant-report", small_model_path)
    assert bad.code != 0 and bad.err.strip().startswith("error: quant-report needs --data")
    assert len(bad.err.strip().splitlines()) == 1


@pytest.mark.slow
def test_x_only_data_reports_the_layer_errors_and_says_accuracy_needs_labels(
    small_model_path, digits, tmp_path
):
    import edgeprune as ep

    x_only = tmp_path / "x.npz"
    np.savez(x_only, x=np.concatenate([digits.x_train[:40], digits.x_val[:20]]))
    report = ep.quant_report(
        small_model_path,
        str(x_only),
        calibration_samples=20,
        samples=10,
        work_dir=tmp_path / "work",
    )
    assert report.layers and report.selective is None and report.int8_metrics is None
    assert any("needs labels" in note for note in report.notes)
    with pytest.raises(UserError, match="unknown option 'bogus'"):
        ep.quant_report(small_model_path, "digits", bogus=1)


@pytest.mark.slow
def test_layer_shares_come_from_the_table_the_second_time(small_model_path, tmp_path):
    """Every layer with a cost of its own is measured once on the device; a second call (a
    second report, or after `adapt --quantize int8`) measures nothing and agrees."""
    from edgeprune.fleet.inventory import local_device
    from edgeprune.models import load_keras_model
    from edgeprune.results.store import ResultsStore
    from edgeprune.workflows.layer_latency import ShareSettings, layer_shares

    model = load_keras_model(small_model_path)
    store = ResultsStore(tmp_path / "r.db")
    runtime = {"runtime": "ai_edge_litert", "runtime_version": "test"}
    settings = ShareSettings(table_runs=5, runs=5)
    table = tmp_path / "table.db"
    first = layer_shares(model, local_device(), store, runtime, settings, table_path=table)
    assert first.error is None and first.measured > 1
    assert {"stem_conv", "classifier"} <= set(first.shares)
    assert "stem_bn" not in first.shares  # folded into the conv by the converter
    again = layer_shares(model, local_device(), store, runtime, settings, table_path=table)
    assert again.measured == 0 and again.shares == first.shares
