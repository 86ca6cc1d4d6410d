"""Constraints: refused bad input before any work (recipe file:line, CLI exit 2), the shape
of `run --json`, and deciding again from the cache with new limits (nothing re-measured)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

TINY = """
name: tiny
model: {demo: true, width: 8, train: {epochs: 1}}
data: digits
pipelines:
  dense: {}
  pruned:
    prune: {method: oneshot, sparsity: 0.5}
devices: [local]
bench: {runs: 40, warmup: 2}
CONSTRAINTS
"""


def recipe_text(constraints: str = "") -> str:
    return TINY.replace("CONSTRAINTS", constraints)


def measurement_count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]


@pytest.mark.parametrize(
    ("constraints", "line", "message"),
    [
        (
            "constraints: {max_latency_ms: -3}",
            10,
            "constraints.max_latency_ms: should be greater than 0 (got -3)",
        ),
        (
            "constraints:\n  max_model_kb: lots",
            11,
            "constraints.max_model_kb: should be a valid number (got 'lots')",
        ),
        (
            "constraints:\n  max_latency_ms: 5\n  latency_percentile: 75",
            12,
            "constraints.latency_percentile: should be 50, 90 or 99 (got 75)",
        ),
        (
            "constraints:\n  devices:\n    local: {max_peak_memory_mb: 0}",
            12,
            "constraints.devices.local.max_peak_memory_mb: should be greater than 0 (got 0)",
        ),
        (
            "constraints:\n  devices:\n    pi5: {max_latency_ms: 3}",
            12,
            "constraints.devices.pi5: no device or tag 'pi5' in this run; devices: local",
        ),
    ],
)
def test_bad_constraints_in_a_recipe_name_file_and_line_before_any_work(
    run_cli, write_recipe, tmp_path: Path, constraints: str, line: int, message: str
):
    recipe = write_recipe(recipe_text(constraints))
    workdir, db = tmp_path / "work", tmp_path / "results.db"
    outcome = run_cli("run", recipe, "--workdir", workdir, "--db", db)
    assert outcome.code == 2, outcome.err
    assert f"{recipe}:{line}: {message}" in outcome.err
    assert not workdir.exists() and not db.exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--max-latency-ms", "-1"), "--max-latency-ms: Input should be greater than 0"),
        (("--max-latency-ms", "fast"), "Invalid value for '--max-latency-ms'"),
        (("--latency-percentile", "75"), "--latency-percentile: Input should be 50, 90 or 99"),
        (("--max-memory-mb", "0"), "--max-memory-mb: Input should be greater than 0"),
        (("--max-model-kb", "-5"), "--max-model-kb: Input should be greater than 0"),
    ],
)
def test_bad_constraint_flags_exit_2_before_any_work(
    run_cli, write_recipe, tmp_path: Path, flags: tuple[str, ...], message: str
):
    recipe = write_recipe(recipe_text())
    workdir, db = tmp_path / "work", tmp_path / "results.db"
    outcome = run_cli("run", recipe, "--workdir", workdir, "--db", db, *flags)
    assert outcome.code == 2, outcome.err
    assert message in " ".join(outcome.err.split()), outcome.err
    assert not workdir.exists() and not db.exists()


def test_run_json_decides_per_device_and_again_from_the_cache_with_new_limits(
    run_cli, write_recipe, tmp_path: Path
):
    recipe = write_recipe(recipe_text("constraints: {max_model_kb: 100000}"))
    workdir, db = tmp_path / "work", tmp_path / "results.db"
    common = ("--workdir", workdir, "--db", db, "--json")

    outcome = run_cli("run", recipe, *common)
    assert outcome.code == 0, outcome.err
    first = json.loads(outcome.out)
    (decision,) = first["devices"]
    assert set(decision) >= {"device", "choice", "runner_up", "reason", "excluded"}
    assert decision["device"] == "local"
    assert decision["choice"] in {"dense-fp32", "pruned-fp32"}
    assert decision["constraints"]["max_model_kb"] == 100000
    (device,) = first["report"]["devices"]
    for row in device["rows"]:  # intervals and verdicts on every row
        low, high = row["p50_ci"]
        assert low <= row["p50_ms"] <= high
        assert row["runs"] >= 40
        assert row["verdict"] in {"baseline", "faster", "slower", "indistinguishable"}
        low, high = row["top1_ci"]
        assert low <= row["top1_host"] <= high
    reference = [r for r in device["rows"] if r["verdict"] == "baseline"]
    assert [r["variant"] for r in reference] == ["dense-fp32"]
    other = next(r for r in device["rows"] if r["variant"] != "dense-fp32")
    assert other["speedup_ci"][0] <= other["speedup"] <= other["speedup_ci"][1]
    accuracy = device["recommendation"]["accuracy"]
    assert accuracy["dense-fp32"]["paired"] is True  # judged on the same samples
    assert accuracy["dense-fp32"]["verdict"] in {"within_budget", "cannot_tell", "over_budget"}
    rows = measurement_count(db)

    # a limit nothing can meet: no choice, the reason names the limit and by how much
    outcome = run_cli("run", recipe, *common, "--max-latency-ms", "0.000001")
    assert outcome.code == 0, outcome.err
    again = json.loads(outcome.out)
    assert again["stages_built"] == 0 and again["measurements_made"] == 0
    assert measurement_count(db) == rows  # decided again from the cache: nothing measured
    (decision,) = again["devices"]
    assert decision["choice"] is None and decision["runner_up"] is None
    assert "max_latency_ms excluded the last variant(s)" in decision["reason"]
    assert "over 1e-06 ms" in decision["reason"]
    assert {e["variant"] for e in decision["excluded"]} == {"dense-fp32", "pruned-fp32"}
    for excluded in decision["excluded"]:
        latency = next(b for b in excluded["breaks"] if b["constraint"] == "max_latency_ms")
        assert latency["limit"] == 1e-06 and latency["over_by"] > 0

    # the flag replaces the recipe's limit; p99 needs more runs than 40
    outcome = run_cli("run", recipe, *common, "--max-model-kb", "1", "--latency-percentile", "90")
    assert outcome.code == 0, outcome.err
    (decision,) = json.loads(outcome.out)["devices"]
    assert decision["choice"] is None
    assert decision["constraints"]["max_model_kb"] == 1
    breaks = [b for e in decision["excluded"] for b in e["breaks"]]
    assert {b["constraint"] for b in breaks} >= {"max_model_kb"}
    assert measurement_count(db) == rows

    outcome = run_cli("results", "report", "--db", db)  # the stored run: same limits
    assert outcome.code == 0, outcome.err
    assert "no recommendation" in outcome.out and "model <= 1 kB" in outcome.out


def test_python_keywords_take_the_same_constraints_and_refuse_bad_ones(
    write_recipe, tmp_path: Path
):
    import edgeprune as ep
    from edgeprune.errors import UserError

    recipe = write_recipe(recipe_text())
    workdir, db = tmp_path / "work", tmp_path / "results.db"
    with pytest.raises(UserError) as caught:
        ep.run_recipe(recipe, workdir=workdir, db=db, latency_percentile=95)
    assert str(caught.value).startswith("latency_percentile: Input should be 50, 90 or 99")
    assert caught.value.params == ("latency_percentile",)
    with pytest.raises(UserError, match="did you mean|unknown|max_latency_ms"):
        ep.run_recipe(recipe, workdir=workdir, db=db, max_latency=3)
    assert not workdir.exists() and not db.exists()


def test_dry_run_shows_each_devices_constraints_with_the_flags_applied(
    run_cli, write_recipe, tmp_path: Path
):
    recipe = write_recipe(
        recipe_text("constraints:\n  max_model_kb: 500\n  devices:\n    local: {max_latency_ms: 5}")
    )
    common = ("--workdir", tmp_path / "work", "--dry-run", "--max-memory-mb", "64")
    outcome = run_cli("run", recipe, *common, "--json")
    assert outcome.code == 0, outcome.err
    limits = json.loads(outcome.out)["constraints"]["local"]
    assert (limits["max_model_kb"], limits["max_latency_ms"], limits["max_peak_memory_mb"]) == (
        500,
        5,
        64,
    )
    outcome = run_cli("run", recipe, *common)
    assert outcome.code == 0, outcome.err
    assert "constraints on local: p50 <= 5 ms, peak memory <= 64 MB, model <= 500 kB" in " ".join(
        outcome.out.split()
    )
    assert not (tmp_path / "work" / "results.db").exists()  # a dry run stores nothing
