"""`edgeprune run` on tiny recipes: real training, conversion, the `local` device, SQLite.

The stage cache is judged by what happened, not by time: which stages were built, which
files changed, how many measurements the store holds and what the device's spool holds.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

TINY = """
name: tiny
model: {{demo: true, width: 8, train: {{epochs: 1}}}}
data: digits
pipelines:
  dense: {{}}
  pruned:
    prune: {{method: oneshot, sparsity: {sparsities}}}
devices: [local]
bench: {{runs: 3, warmup: 0}}
"""


def run_json(run_cli, *args: object) -> tuple[int, dict, str]:
    outcome = run_cli("run", *args, "--json")
    return outcome.code, json.loads(outcome.out) if outcome.out.strip() else {}, outcome.err


def stage_stamps(workdir: Path) -> dict[str, int]:
    return {str(p.relative_to(workdir)): p.stat().st_mtime_ns for p in workdir.glob("stages/*/*")}


def measurement_count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]


def spool_files(tmp_path: Path) -> dict[str, int]:
    spool = tmp_path / "xdg-data" / "edgeprune" / "local-spool"
    return {
        str(p.relative_to(spool)): p.stat().st_mtime_ns
        for p in spool.rglob("*")
        if p.is_file() and "logs" not in p.parts and p.name != "daemon.lock"
    }


def test_rerun_is_all_cached_and_a_new_sweep_value_does_only_the_missing_work(
    run_cli, write_recipe, tmp_path: Path
):
    recipe = write_recipe(TINY.format(sparsities="[0.5]"))
    workdir = tmp_path / "work"
    db = workdir / "results.db"  # no --db, no $EDGEPRUNE_RESULTS_DB: the work dir's own
    common = ("--workdir", workdir)

    code, first, err = run_json(run_cli, recipe, *common)
    assert code == 0, err
    assert first["stages_built"] == 4  # base, dense convert, prune 0.5, its convert
    assert first["measurements_made"] == 2
    assert first["grid"]["dense-fp32"] == {"base": "done", "convert": "done", "bench@local": "done"}
    assert first["grid"]["pruned-sp0.5-fp32"]["base"] == "done"  # shared, built once
    (device,) = first["report"]["devices"]
    assert device["recommendation"]["choice"]["variant"] in {"dense-fp32", "pruned-sp0.5-fp32"}
    for row in device["rows"]:
        assert row["status"] == "ok" and row["p50_ms"] > 0
        # the validation samples were shipped: the device's top-1 matches the host's
        assert abs(row["top1_device"] - row["top1_host"]) <= 0.01
    assert (workdir / "models" / "pruned-sp0.5-fp32.tflite").is_file()
    assert (workdir / "report.html").is_file() and (
        workdir / "plots" / "pareto-local.png"
    ).is_file()

    stamps, rows, spool = stage_stamps(workdir), measurement_count(db), spool_files(tmp_path)
    code, again, err = run_json(run_cli, recipe, *common)
    assert code == 0, err
    assert again["stages_built"] == 0 and again["measurements_made"] == 0
    assert {s for row in again["grid"].values() for s in row.values()} == {"cached"}
    assert stage_stamps(workdir) == stamps  # nothing trained or converted again
    assert measurement_count(db) == rows  # nothing measured again
    assert spool_files(tmp_path) == spool  # nothing deployed, no job queued
    # the new run's report is rebuilt from the stored measurements it points at
    assert again["report"]["devices"][0]["rows"] == device["rows"]
    assert again["run_id"] == first["run_id"] + 1 and again["db"] == str(db)
    # the cached re-run is no empty run: it points at the measurements it reused
    listed = json.loads(run_cli("results", "list", "--db", db, "--json").out)
    assert listed["db"] == str(db)
    assert [
        (r["id"], r["kind"], r["status"], r["rows"], r["reused_rows"]) for r in listed["runs"]
    ] == [
        (again["run_id"], "recipe", "cached", 2, 2),
        (first["run_id"], "recipe", "ok", 2, 0),
    ]
    shown = json.loads(run_cli("results", "show", again["run_id"], "--db", db, "--json").out)
    assert {(r["model"], r["measured_in"]) for r in shown["rows"]} == {
        ("dense-fp32.tflite", first["run_id"]),
        ("pruned-sp0.5-fp32.tflite", first["run_id"]),
    }
    assert not (tmp_path / "xdg-data" / "edgeprune" / "results.db").exists()  # not the machine's

    code, plan, err = run_json(run_cli, recipe, *common, "--dry-run")
    assert code == 0, err
    assert all(s["cached"] for v in plan["variants"] for s in v["stages"])

    recipe.write_text(TINY.format(sparsities="[0.5, 0.7]"))
    code, plan, err = run_json(run_cli, recipe, *common, "--dry-run")
    assert code == 0, err
    new = {v["name"]: {s["stage"]: s["cached"] for s in v["stages"]} for v in plan["variants"]}
    assert new["pruned-sp0.7-fp32"] == {
        "base": True,
        "prune": False,
        "convert": False,
        "bench@local": False,
    }
    assert all(new["pruned-sp0.5-fp32"].values()) and all(new["dense-fp32"].values())

    code, third, err = run_json(run_cli, recipe, *common)
    assert code == 0, err
    assert third["stages_built"] == 2 and third["measurements_made"] == 1
    assert third["grid"]["pruned-sp0.7-fp32"] == {
        "base": "cached",
        "prune": "done",
        "convert": "done",
        "bench@local": "done",
    }
    assert measurement_count(db) == rows + 1
    sparsity = {v["name"]: v["sparsity"] for v in third["report"]["variants"]}
    assert sparsity["pruned-sp0.7-fp32"] > sparsity["pruned-sp0.5-fp32"] > sparsity["dense-fp32"]

    listed = json.loads(run_cli("results", "list", "--db", db, "--json").out)
    assert listed["runs"][0]["status"] == "ok" and listed["runs"][0]["reused_rows"] == 2
    shown = json.loads(run_cli("results", "show", "--db", db, "--json").out)
    assert len(shown["rows"]) == 3  # show agrees with report: every variant on every device
    outcome = run_cli("results", "report", "--db", db)  # the latest run: the recipe report
    assert outcome.code == 0, outcome.err
    assert "pruned-sp0.7-fp32" in outcome.out and "local: ship" in outcome.out


def test_a_killed_run_resumes_and_a_failed_conversion_does_not_stop_the_sweep(
    run_cli, write_recipe, tmp_path: Path
):
    import os
    import signal
    import subprocess
    import sys
    import time

    # int8 weights stored sparse convert, but XNNPACK cannot run them: the smoke run refuses
    recipe = write_recipe(
        """
        name: breaks
        model: {demo: true, width: 8}   # untrained; the prune stage trains
        data: digits
        steps:
          prune: {sparsity: 0.8, epochs: 2, min_params: 0}
          convert: {quantize: int8, sparse_weights: [false, true]}
        bench: {runs: 3, warmup: 0}
        """
    )
    workdir = tmp_path / "work"
    command = [sys.executable, "-c", "from edgeprune.cli.app import main; main()"]
    child = subprocess.Popen(
        [*command, "run", str(recipe), "--workdir", str(workdir), "--db", str(tmp_path / "r.db")],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while not list(workdir.glob("stages/base-*/stage.json")):
            assert child.poll() is None, "the run ended before its first stage was done"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)  # into the prune stage (two epochs)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert not list(workdir.glob("stages/prune-*/stage.json"))  # killed before it finished

    outcome = run_cli(
        "run",
        recipe,
        "--workdir",
        workdir,
        "--db",
        tmp_path / "r.db",
        "--strategy",
        "mirrored",
        "--json",
    )
    assert outcome.code == 1
    result = json.loads(outcome.out)
    grid = result["grid"]
    assert grid["no_sparse_weights-int8"] == {
        "base": "cached",  # the killed run's finished stage
        "prune": "done",
        "convert": "done",
        "bench@local": "done",
    }
    assert not list(workdir.glob("stages/.tmp-*"))  # the killed run's half stage is gone
    assert grid["sparse_weights-int8"]["convert"] == "failed"
    assert grid["sparse_weights-int8"]["bench@local"] == "skipped"
    assert "does not run" in result["failures"]["sparse_weights-int8"]
    (device,) = result["report"]["devices"]
    assert [r["variant"] for r in device["rows"]] == ["no_sparse_weights-int8"]
    assert "failed on the host" in device["missing"]["sparse_weights-int8"]
    assert (
        outcome.err.strip()
        .splitlines()[-1]
        .startswith("error: 1 of 2 variant(s) failed; first: sparse_weights-int8: convert:")
    )
    assert "Traceback" not in outcome.err
    assert "sparse_weights-int8 × convert" in (workdir / "errors.log").read_text()
    # the training stage ran under the strategy asked for
    (prune_record,) = workdir.glob("stages/prune-*/stage.json")
    strategy = json.loads(prune_record.read_text())["metrics"]["strategy"]
    assert strategy == {"name": "MirroredStrategy", "replicas": 1}
