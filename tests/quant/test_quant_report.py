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
