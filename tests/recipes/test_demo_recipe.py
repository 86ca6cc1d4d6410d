"""The README's main job, end to end once: configs/recipes/demo.yaml from a clean work dir
on the `local` device, then re-runs that train and measure nothing while the accuracy
budget decides the recommendation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "configs/recipes/demo.yaml"


def check_the_rule(device: dict) -> str | None:
    """The rule, written out again from the JSON: the pick is eligible (no constraint broken,
    accuracy within budget at 95 %), tied with the fastest eligible variant (not separated
    at 95 %), and the most accurate of those tied; every eligible variant left out of the
    tie is clearly slower than the fastest. Returns the pick."""
    rec = device["recommendation"]
    excluded = {e["variant"] for e in rec["excluded"]}
    rows = [r for r in device["rows"] if r["status"] == "ok"]
    eligible = [r for r in rows if r["variant"] not in excluded]
    for r in eligible:
        assert rec["accuracy"][r["variant"]]["verdict"] == "within_budget", r["variant"]
    if not eligible:
        assert rec["choice"] is None
        return None
    fastest = min(eligible, key=lambda r: r["p50_ms"])
    tied = set(rec["tied"]) or {rec["choice"]["variant"]}
    for r in eligible:
        if r["variant"] == fastest["variant"]:
            continue
        verdict = rec["comparisons"][r["variant"]]["verdict"]
        assert (verdict != "faster") == (r["variant"] in tied), (r["variant"], verdict)
    best = max(r["top1_host"] for r in eligible if r["variant"] in tied)
    choice = rec["choice"]["variant"]
    assert next(r for r in rows if r["variant"] == choice)["top1_host"] == best
    assert "95 %" in rec["reason"]  # the reason shows its interval
    return str(choice)


@pytest.mark.slow
def test_demo_recipe_end_to_end_then_cached_with_the_budget_deciding(run_cli, tmp_path: Path):
    common = ("--workdir", tmp_path / "demo", "--db", tmp_path / "results.db", "--json")
    outcome = run_cli("run", DEMO, *common)
    assert outcome.code == 0, outcome.err
    first = json.loads(outcome.out)
    names = ["dense-fp32", "dense-int8", "pruned-fp32", "pruned-int8", "channels-int8"]
    assert [v["name"] for v in first["report"]["variants"]] == names
    assert sorted(first["grid"]) == sorted(names)
    assert all(state == "done" for row in first["grid"].values() for state in row.values())
    assert first["measurements_made"] == 5

    report = first["report"]
    variants = {v["name"]: v for v in report["variants"]}
    baseline = report["baseline_top1"]
    assert baseline > 0.9  # the demo model learned the digits
    assert variants["pruned-fp32"]["sparse_weights"] is True  # stored sparse for XNNPACK
    assert variants["pruned-fp32"]["sparsity"] > 0.5
    assert variants["dense-fp32"]["sparse_weights"] is False
    assert variants["dense-int8"]["quantize"] == "int8"
    # int8 is about 4x smaller than fp32, channel pruning smaller again
    assert variants["dense-int8"]["size_bytes"] < variants["dense-fp32"]["size_bytes"] / 2.5
    assert variants["channels-int8"]["size_bytes"] < variants["dense-int8"]["size_bytes"] / 2

    (local,) = report["devices"]
    rows = local["rows"]
    assert [r["variant"] for r in rows] == names
    for row in rows:
        assert row["status"] == "ok" and row["p50_ms"] > 0 and row["p90_ms"] >= row["p50_ms"]
        assert abs(row["top1_device"] - row["top1_host"]) <= 0.01  # inputs were shipped
    for row in rows:  # intervals and verdicts on every row
        assert row["p50_ci"][0] <= row["p50_ms"] <= row["p50_ci"][1]
        assert row["verdict"] in {"baseline", "faster", "slower", "indistinguishable"}
    check_the_rule(local)
    (decision,) = first["devices"]
    assert decision["choice"] == local["recommendation"]["choice"]["variant"]

    # the budget decides: with any loss allowed the fastest variant wins; with none allowed
    # only a variant whose drop is surely <= 0 can. The demo's fastest variant (three
    # quarters of the filters removed, then int8) is meant to cost accuracy.
    fastest = min(rows, key=lambda r: r["p50_ms"])
    assert fastest["top1_host"] < baseline, "the demo should show a speed/accuracy trade-off"
    picks = {}
    for budget in (0.0, 100.0):
        outcome = run_cli("run", DEMO, *common, "--accuracy-budget", str(budget))
        assert outcome.code == 0, outcome.err
        again = json.loads(outcome.out)
        assert again["stages_built"] == 0 and again["measurements_made"] == 0
        assert {s for row in again["grid"].values() for s in row.values()} == {"cached"}
        (device,) = again["report"]["devices"]
        picks[budget] = check_the_rule(device)
    assert picks[100.0] == fastest["variant"]
    assert picks[0.0] != picks[100.0]

    page = tmp_path / "latest.html"
    outcome = run_cli("results", "report", "--db", tmp_path / "results.db", "--html", page)
    assert outcome.code == 0, outcome.err
    text = page.read_text()
    assert f"Recommended: {picks[100.0]}" in text and "data:image/png;base64," in text
    assert (tmp_path / "demo" / "plots" / "pareto-local.png").stat().st_size > 10_000
