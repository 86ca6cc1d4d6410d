"""The recipe report from a stored run's record and rows: intervals, verdicts, exclusions,
constraints and the warning legend in Markdown, HTML and JSON (real statistics)."""

from __future__ import annotations

import numpy as np

from edgeprune.recipes.constraints import ConstraintOptions
from edgeprune.recipes.correctness import pack, unpack
from edgeprune.recipes.report import build_report
from edgeprune.recipes.report_html import render_html

N = 360


def flags(right: int) -> np.ndarray:
    out = np.zeros(N, dtype=bool)
    out[:right] = True
    return out


def row(job: str, sha: str, median: float, seed: int, warnings: list[str], size: int) -> dict:
    rng = np.random.default_rng(seed)
    values = [float(v) for v in median * np.exp(rng.normal(0, 0.03, 300))]
    return {
        "run_id": 1,
        "device": "pi4",
        "job_id": job,
        "model_sha256": sha,
        "threads": 1,
        "xnnpack": True,
        "status": "ok",
        "error": None,
        "p50_ms": float(np.median(values)),
        "p90_ms": float(np.quantile(values, 0.9)),
        "p99_ms": float(np.quantile(values, 0.99)),
        "runs": len(values),
        "peak_rss_kb": 40_000,
        "size_bytes": size,
        "gzip_bytes": size // 2,
        "accuracy": None,
        "accuracy_source": None,
        "warnings": warnings,
        "result": {"measurements": [{"threads": 1, "xnnpack": True, "latencies_ms": values}]},
    }


def record() -> dict:
    return {
        "name": "r",
        "accuracy_budget": 1.0,
        "baseline_top1": 353 / N,
        "baseline_samples": N,
        "baseline_classes": 10,
        "baseline_correct": pack(flags(353)),
        "devices": ["pi4"],
        "constraints": {"pi4": {"max_latency_ms": 1.5, "latency_percentile": 90}},
        "variants": [
            {
                "name": "dense",
                "sha256": "a" * 64,
                "top1": 353 / N,
                "samples": N,
                "correct": pack(flags(353)),
                "size_bytes": 80_000,
                "gzip_bytes": 40_000,
            },
            {
                "name": "int8",
                "sha256": "b" * 64,
                "top1": 353 / N,  # the same samples right: within any budget
                "samples": N,
                "correct": pack(flags(353)),
                "size_bytes": 20_000,
                "gzip_bytes": 10_000,
            },
            {
                "name": "slow",
                "sha256": "c" * 64,
                "top1": 353 / N,
                "samples": N,
                "correct": pack(flags(353)),
                "size_bytes": 20_000,
                "gzip_bytes": 10_000,
            },
        ],
        "measurements": {"pi4": {"dense": [1, "j1"], "int8": [1, "j2"], "slow": [1, "j3"]}},
    }


def rows() -> list[dict]:
    return [
        row("j1", "a" * 64, 1.00, 1, [], 80_000),
        row("j2", "b" * 64, 0.60, 2, ["high_spread"], 20_000),
        row("j3", "c" * 64, 2.00, 3, [], 20_000),
    ]


def test_packed_correctness_round_trips():
    original = np.random.default_rng(0).random(1001) > 0.3
    assert (unpack(pack(original)) == original).all()
    assert unpack({"n": 5}) is None and unpack(None) is None


def test_report_shows_intervals_verdicts_constraints_and_the_warning_legend():
    report = build_report(record(), rows(), 1)
    (device,) = report.devices
    rec = device.recommendation
    assert rec.choice is not None and rec.choice.variant == "int8"
    assert [e.variant for e in rec.excluded] == ["slow"]
    assert rec.excluded[0].breaks[0].constraint == "max_latency_ms"
    verdicts = {r["variant"]: r["verdict"] for r in device.rows}
    assert verdicts == {"dense": "baseline", "int8": "faster", "slow": "slower"}
    int8 = next(r for r in device.rows if r["variant"] == "int8")
    assert int8["speedup_ci"][0] < int8["speedup"] < int8["speedup_ci"][1]
    assert int8["p50_ci"][0] <= int8["p50_ms"] <= int8["p50_ci"][1]

    markdown = report.to_markdown()
    assert "Constraints: p90 <= 1.5 ms." in markdown
    assert "- excluded: slow (p90 " in markdown
    assert "| p50 ms (95 %) |" in markdown and "faster" in markdown
    assert "high_spread: " in markdown and "Fix: " in markdown
    page = render_html(report, [])
    assert "Constraints: p90 &lt;= 1.5 ms" in page and "<b>high_spread</b>" in page

    data = report.to_dict()
    assert "correct" not in data["variants"][0]  # the per-sample bits stay in the store
    assert data["warning_legend"][0]["code"] == "high_spread"
    (decision,) = report.decisions()
    assert decision["choice"] == "int8" and decision["excluded"][0]["variant"] == "slow"


def test_other_limits_decide_again_on_the_same_rows():
    report = build_report(record(), rows(), 1, limits=ConstraintOptions.create(max_model_kb=50))
    rec = report.devices[0].recommendation
    assert rec.choice is not None and rec.choice.variant == "int8"
    assert {e.variant for e in rec.excluded} == {"dense"}
    assert "model 80.0 kB is 30.0 kB over 50 kB" in rec.excluded[0].breaks[0].text
