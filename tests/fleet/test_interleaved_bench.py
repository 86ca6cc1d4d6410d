"""Several models on one device: one interleaved group job (the default) or one job each.

On the real `local` device (the agent in a subprocess, the real TFLite runtime, a real
SQLite store). Interleaved, the models' rows share the group id and ran in the same rounds;
with --no-interleave each model is its own job, as before. Bad --precision values are
refused before any work.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.fixtures import padded_model_variants

from device_agents.protocol import BenchOptions as WireOptions
from device_agents.protocol import LatencySummary, Measurement, Result, error_result
from edgeprune.errors import UserError
from edgeprune.fleet.artifacts import load_model
from edgeprune.fleet.options import BenchOptions
from edgeprune.fleet.remote_bench import plan_jobs
from edgeprune.recipes.loader import load_recipe
from edgeprune.recipes.plan import bench_options_of
from edgeprune.results.store import ResultsStore
from edgeprune.workflows.bench import bench_models


@pytest.fixture
def three_models(tiny_tflite: Path, tmp_path: Path) -> list[Path]:
    """Three distinct files (different sha256) of the tiny model."""
    return padded_model_variants(tiny_tflite, 3, tmp_path / "models")


def test_three_models_on_local_are_one_group_measured_in_the_same_rounds(
    three_models: list[Path], tmp_path: Path
):
    db = tmp_path / "results.db"
    run = bench_models(
        three_models, options=BenchOptions.create(runs=10, warmup=0, round_runs=5), store=db
    )
    run.raise_for_failures()
    rows = ResultsStore(db, create=False).measurements([run.run_id], with_json=True)
    assert sorted(r["model_name"] for r in rows) == [p.name for p in three_models]
    groups = {r["group_id"] for r in rows}
    assert len(groups) == 1 and None not in groups
    (group,) = groups
    jobs = {r["job_id"] for r in rows}
    assert len(jobs) == 3 and group not in jobs  # each member is its own job, none the group
    rounds = [r["result"]["measurements"][0]["rounds"] for r in rows]
    assert all(r is not None and len(r) == len(rounds[0]) >= 2 for r in rounds), rounds
    assert all(sum(r) == row["runs"] >= 10 for r, row in zip(rounds, rows, strict=True))
    assert all(r["p50_lo_ms"] <= r["p50_ms"] <= r["p50_hi_ms"] for r in rows)
    assert _run_options(db, run.run_id)["interleave"] is True
    assert _spool_results(tmp_path) == []  # the group was acknowledged once all were stored


def test_no_interleave_on_the_cli_runs_one_job_per_model(
    three_models: list[Path], tmp_path: Path, run_cli
):
    db = tmp_path / "results.db"
    outcome = run_cli(
        "bench", *three_models, "--runs", "6", "--warmup", "0", "--no-interleave", "--db", db,
        "--json",
    )  # fmt: skip
    assert outcome.code == 0, outcome.err
    document = json.loads(outcome.out)
    rows = ResultsStore(db, create=False).measurements([document["run_id"]], with_json=True)
    assert len({r["job_id"] for r in rows}) == 3
    assert [r["group_id"] for r in rows] == [None, None, None]
    assert [r["result"]["group"] for r in rows] == [None, None, None]
    assert _run_options(db, document["run_id"])["interleave"] is False


def test_precision_flags_reach_the_device_and_come_back_in_the_rows(
    three_models: list[Path], tmp_path: Path, run_cli
):
    db = tmp_path / "results.db"
    outcome = run_cli(
        "bench", *three_models[:2], "--runs", "6", "--warmup", "0", "--round-runs", "3",
        "--precision", "25%", "--max-seconds", "5", "--db", db, "--json",
    )  # fmt: skip
    assert outcome.code == 0, outcome.err
    run_id = json.loads(outcome.out)["run_id"]
    rows = ResultsStore(db, create=False).measurements([run_id], with_json=True)
    assert len(rows) == 2 and len({r["group_id"] for r in rows}) == 1
    for row in rows:
        measurement = row["result"]["measurements"][0]
        assert measurement["precision"]["target"] == 0.25
        assert measurement["precision"]["runs"] == row["runs"] >= 6
        assert all(size == 3 for size in measurement["rounds"])  # round_runs per round
        assert row["result"]["options"]["max_seconds"] == 5.0
    assert _run_options(db, run_id)["precision"] == 0.25


def test_a_broken_model_in_a_group_fails_alone(three_models: list[Path], tmp_path: Path):
    broken = tmp_path / "broken.tflite"
    data = bytearray(three_models[0].read_bytes())
    data[64:] = bytes(len(data) - 64)  # keeps the TFL3 identifier, loses the model
    broken.write_bytes(bytes(data))
    run = bench_models([*three_models[:2], broken], options=BenchOptions(runs=6, warmup=0))
    by_name = {r["model"]: r for r in run.rows}
    assert by_name["broken.tflite"]["status"] == "error"
    assert [by_name[p.name]["status"] for p in three_models[:2]] == ["ok", "ok"]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("2", "--precision: 2 is ambiguous; write 2% or 0.02"),
        ("60%", "--precision: must be above 0 and below 50 %"),
        ("0", "--precision: must be above 0 and below 50 %"),
        ("-1%", "--precision: must be above 0 and below 50 %"),
        ("fine", "--precision: 'fine' is not a number"),
    ],
)
def test_bad_precision_on_the_cli_is_refused_before_any_work(tmp_path: Path, run_cli, value, text):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"never read: the options are checked first")
    outcome = run_cli("bench", model, "--precision", value, "--db", tmp_path / "r.db")
    assert outcome.code == 2, outcome.err
    lines = outcome.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite"]


def test_a_recipes_precision_2_percent_reaches_the_wire(tmp_path: Path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "model: {demo: true, width: 8, train: {epochs: 1}}\n"
        "data: digits\nsteps: {}\n"
        'bench: {precision: "2%", max_seconds: 30, round_runs: 10, interleave: false}\n'
    )
    loaded = load_recipe(recipe)
    wire = bench_options_of(loaded)
    assert (wire.precision, wire.max_seconds, wire.round_runs) == (0.02, 30.0, 10)
    assert not hasattr(wire, "interleave")
    spec: Any = loaded.spec.bench  # built by create_model from BenchOptions' fields
    assert spec.interleave is False
    recipe.write_text(
        recipe.read_text().replace('bench: {precision: "2%"', "bench:\n  {precision: 2")
    )
    with pytest.raises(UserError, match=r"r\.yaml:5: bench\.precision: 2 is ambiguous; write 2%"):
        load_recipe(recipe)


def test_each_member_is_matched_by_its_id_and_a_failed_group_fails_every_model(
    three_models: list[Path],
):
    models = [load_model(p) for p in three_models]
    (job,) = plan_jobs(models, interleave=True)
    assert len(job.member_ids) == 3 and job.job_id not in job.member_ids
    values = [1.0, 1.1, 1.2, 1.3, 1.4, 1.5]
    members = [
        Result(
            job_id=member_id,
            model_sha256=model.sha256,
            status="ok",
            measurements=[
                Measurement(1, True, latencies_ms=values, summary=LatencySummary.of(values))
            ],
            group=job.job_id,
        )
        for model, member_id in zip(models, job.member_ids, strict=True)
    ]
    outer = Result(
        job_id=job.job_id,
        model_sha256=models[0].sha256,
        status="ok",
        members=members[::-1],  # the agent's order is not the host's
        options=WireOptions(),
    ).validate()
    paired = job.results(outer)
    assert [(m.sha256, r.job_id) for m, r in paired] == [
        (m.sha256, i) for m, i in zip(models, job.member_ids, strict=True)
    ]
    failed = error_result(job.job_id, models[0].sha256, "inputs do not fit the models")
    for model, own in job.results(failed):
        assert own.status == "error" and own.group == job.job_id
        assert own.model_sha256 == model.sha256 and "inputs do not fit" in (own.error or "")
        own.validate()
    assert [len(j.models) for j in plan_jobs(models, interleave=False)] == [1, 1, 1]
    assert plan_jobs(models[:1], interleave=True)[0].member_ids == []


def test_more_models_than_a_group_holds_are_split(tiny_tflite: Path, tmp_path: Path):
    models = [load_model(p) for p in padded_model_variants(tiny_tflite, 17, tmp_path / "many")]
    jobs = plan_jobs(models, interleave=True)
    assert [len(j.models) for j in jobs] == [6, 6, 5]  # of about equal size, none left alone
    assert all(len(j.member_ids) == len(j.models) for j in jobs)
    assert [m.sha256 for j in jobs for m in j.models] == [m.sha256 for m in models]
    nine = plan_jobs(models[:9], interleave=True)
    assert [len(j.models) for j in nine] == [5, 4]


def _run_options(db: Path, run_id: int) -> dict[str, Any]:
    """The bench options a run was recorded with."""
    info = ResultsStore(db, create=False).run_info(run_id)
    assert info is not None
    return dict(info["options"]["options"])


def _spool_results(tmp_path: Path) -> list[str]:
    """Result files left in the local device's spool (none once everything was acknowledged)."""
    spool = tmp_path / "xdg-data" / "edgeprune" / "local-spool" / "results"
    return sorted(p.name for p in spool.iterdir() if p.is_file()) if spool.is_dir() else []
