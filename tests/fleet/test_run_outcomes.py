"""Schema v4: every run says what it was (kind), how it ended (status, error) and which
earlier measurements it reused, so no command leaves an empty, unexplained run.

`recorded/results-v3.db` is a DB the v3 release made through its own CLI (see
`recorded/make_v3_db.py`): a bench (run 1), a bench on a device nobody answered, which v3
left empty (run 2), a recipe run that measured (run 3) and its fully cached re-run, which
v3 stored with no measurement of its own (run 4).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from edgeprune.fleet.options import BenchOptions
from edgeprune.results import ResultsStore
from edgeprune.results import store as store_module
from edgeprune.results.queries import compare_runs, show_runs
from edgeprune.results.recording import INTERRUPTED, ended_early_recorded
from edgeprune.workflows.bench import bench_models

V3_DB = Path(__file__).parent / "recorded" / "results-v3.db"
QUICK = BenchOptions(runs=2, warmup=0)


def v3_copy(tmp_path: Path, name: str = "v3.db") -> Path:
    target = tmp_path / name
    shutil.copyfile(V3_DB, target)
    return target


def outcomes(store: ResultsStore) -> dict[int, tuple[str, str, int, int]]:
    """run id -> (kind, status, rows, reused rows)."""
    return {r["id"]: (r["kind"], r["status"], r["rows"], r["reused_rows"]) for r in store.runs()}


def user_version(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.close()
    return int(version)


def test_the_recorded_db_is_what_v3_left():
    with sqlite3.connect(f"{V3_DB.as_uri()}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
        own = dict(conn.execute("SELECT run_id, COUNT(*) FROM measurements GROUP BY run_id"))
        commands = [c for (c,) in conn.execute("SELECT command FROM runs ORDER BY id")]
    conn.close()
    assert commands == ["bench", "bench", "run", "run"]
    assert own == {1: 2, 3: 2}  # runs 2 and 4 hold nothing of their own


def test_a_v3_db_is_migrated_in_place_and_its_runs_explained(tmp_path: Path):
    db = v3_copy(tmp_path)
    before = ResultsStore(v3_copy(tmp_path, "before.db"), create=False).measurements(with_json=True)
    store = ResultsStore(db)
    assert user_version(db) == store_module.SCHEMA_VERSION == 4
    assert outcomes(store) == {
        4: ("recipe", "cached", 2, 2),
        3: ("recipe", "ok", 2, 0),
        2: ("bench", "failed", 0, 0),
        1: ("bench", "ok", 2, 0),
    }
    assert store.run_info(2)["error"] == store_module.OLD_EMPTY_RUN
    assert store.measurements(with_json=True) == before  # every old row kept as it was
    # the cached recipe run's rows are run 3's measurements, marked as measured there
    reused = store.measurements([4], include_reused=True, with_json=True)
    measured = store.measurements([3], with_json=True)
    assert [r["measured_in"] for r in reused] == [3, 3] and [r["run_id"] for r in reused] == [4, 4]
    assert [r["job_id"] for r in reused] == [r["job_id"] for r in measured]
    assert [r["p50_ms"] for r in reused] == [r["p50_ms"] for r in measured]
    ResultsStore(db)  # opening it again changes nothing
    assert outcomes(ResultsStore(db)) == outcomes(store)


def test_a_v3_db_read_as_it_is_shows_what_migrating_it_would(tmp_path: Path):
    old, migrated = v3_copy(tmp_path, "old.db"), v3_copy(tmp_path, "migrated.db")
    digest = hashlib.sha256(old.read_bytes()).hexdigest()
    reader = ResultsStore(old, create=False)
    assert reader.runs() == ResultsStore(migrated).runs()
    for run in (2, 4):
        assert reader.run_info(run) == ResultsStore(migrated).run_info(run)
    assert show_runs(old, ["4"]).to_dict() == show_runs(migrated, ["4"]).to_dict()
    assert hashlib.sha256(old.read_bytes()).hexdigest() == digest  # never written
    assert user_version(old) == 3


def test_show_and_compare_of_a_cached_recipe_run_list_what_it_reused(tmp_path: Path, run_cli):
    db = v3_copy(tmp_path)
    shown = show_runs(db, ["4"])
    assert [(r["model"], r["measured_in"], r["status"]) for r in shown.rows] == [
        ("dense-fp32.tflite", 3, "ok"),
        ("pruned-fp32.tflite", 3, "ok"),
    ]
    assert shown.rows[0]["verdict"] == "baseline" and shown.rows[1]["speedup"] > 0
    assert shown.outcomes == [
        {"id": 4, "kind": "recipe", "status": "cached", "error": None, "label": "tiny",
         "command": "run"}
    ]  # fmt: skip
    # run 4 against run 3: the same measurements, so the same p50s
    compared = compare_runs(db, ["3", "4"])
    assert len(compared.rows) == 2
    for row in compared.rows:
        assert row["p50_ms"]["3"] == row["p50_ms"]["4"] and row["runs_present"] == 2

    outcome = run_cli("results", "show", "4", "--db", db)
    assert outcome.code == 0, outcome.err
    assert "pruned-fp32.tflite" in outcome.out and "run 4 reused measurements of run(s) 3" in (
        outcome.out
    )
    outcome = run_cli("results", "export", "4", "--db", db)
    assert outcome.code == 0, outcome.err
    header, *lines = outcome.out.splitlines()
    assert header.startswith("id,run_id,") and header.endswith(",measured_in")
    assert len(lines) == 2 and all(line.endswith(",3") for line in lines)
    outcome = run_cli("results", "show", "2", "--db", db)
    assert outcome.code == 0 and "run 2 failed: stored no measurement" in outcome.out


def test_results_list_names_its_db_and_each_run_outcome(tmp_path: Path, run_cli):
    db = v3_copy(tmp_path)
    outcome = run_cli("results", "list", "--db", db, "--json")
    assert outcome.code == 0, outcome.err
    listed = json.loads(outcome.out)
    assert listed["db"] == str(db)
    assert [(r["id"], r["kind"], r["status"]) for r in listed["runs"]] == [
        (4, "recipe", "cached"),
        (3, "recipe", "ok"),
        (2, "bench", "failed"),
        (1, "bench", "ok"),
    ]
    outcome = run_cli("results", "list", "--db", db)
    assert outcome.code == 0, outcome.err
    assert str(db) in " ".join(outcome.out.split())  # the header names the DB
    assert "2 (2 reused)" in outcome.out and "cached" in outcome.out
    assert "run 2 failed: stored no measurement" in outcome.out


def test_a_bench_on_a_device_nobody_answers_stores_its_failure(tiny_tflite, tmp_path: Path):
    import yaml
    from support.sshd import free_port

    from edgeprune.fleet.inventory import load_inventory

    inventory = tmp_path / "devices.yaml"
    dead = {"name": "dead", "host": "127.0.0.1", "port": free_port(), "retries": 0}
    inventory.write_text(yaml.safe_dump({"devices": [dead]}))
    db = tmp_path / "r.db"
    run = bench_models(
        [tiny_tflite], load_inventory(str(inventory)).select(["dead"]), QUICK, store=db
    )
    assert run.failed_devices == ["dead"]
    info = ResultsStore(db).run_info(run.run_id)
    assert info["kind"] == "bench" and info["status"] == "failed"
    assert info["error"].startswith("dead: ") and "connect" in info["error"]
    assert info["finished_at"] >= info["created_at"]


def test_a_bench_with_a_broken_model_is_failed_with_its_error(tiny_tflite, tmp_path: Path):
    db = tmp_path / "r.db"
    broken = tmp_path / "broken.tflite"
    data = bytearray(tiny_tflite.read_bytes())
    data[64:] = bytes(len(data) - 64)
    broken.write_bytes(bytes(data))
    bad = bench_models([tiny_tflite, broken], options=QUICK, store=db)
    info = ResultsStore(db).run_info(bad.run_id)
    assert info["status"] == "failed" and info["error"].startswith("broken.tflite on local: ")


def test_ctrl_c_during_a_bench_stores_an_interrupted_run(tiny_tflite, tmp_path: Path):
    def interrupt(device: str, what: str, done: int, total: int) -> None:
        if what == "stored":  # Ctrl-C right after the first result came home
            raise KeyboardInterrupt

    db = tmp_path / "r.db"
    with pytest.raises(KeyboardInterrupt):
        bench_models([tiny_tflite], options=QUICK, store=db, progress=interrupt)
    (run,) = ResultsStore(db).runs()
    assert (run["status"], run["error"], run["rows"]) == ("interrupted", INTERRUPTED, 1)


def test_a_run_that_crashes_is_failed_with_the_error_and_the_error_goes_on(tmp_path: Path):
    store = ResultsStore(tmp_path / "r.db")
    run_id = store.begin_run("bench")
    assert store.run_info(run_id)["status"] == "running"
    with pytest.raises(OSError, match="disk on fire"), ended_early_recorded(store, run_id):
        raise OSError("disk on fire")
    info = store.run_info(run_id)
    assert (info["status"], info["error"]) == ("failed", "OSError: disk on fire")
    with ended_early_recorded(store, lambda: None):  # no run begun yet: nothing to mark
        pass
    with pytest.raises(ValueError, match="status 'running'"):
        store.finish_run(run_id, "running")


def test_which_db_a_command_uses(tmp_path: Path, monkeypatch):
    from edgeprune.recipes.executor import recipe_db_path

    work = tmp_path / "work"
    assert recipe_db_path(None, work) == work / "results.db"  # a recipe's runs stay with it
    assert recipe_db_path(tmp_path / "given.db", work) == tmp_path / "given.db"
    assert store_module.default_db_path() == tmp_path / "xdg-data" / "edgeprune" / "results.db"
    monkeypatch.setenv(store_module.DB_ENV, str(tmp_path / "env.db"))
    assert recipe_db_path(None, work) == tmp_path / "env.db"  # the variable says otherwise
    assert recipe_db_path(tmp_path / "given.db", work) == tmp_path / "given.db"
