"""The results store's schema: v3's latency intervals and group ids in columns, v2 DBs
migrated (v3 and v4's run outcomes: tests/fleet/test_run_outcomes.py).

A v2 DB is built here with the v2 release's own SQL (a frozen copy), holding a row the way
that release wrote it, so the migration is tested on a real old file rather than on a DB
this version made and then edited.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from device_agents.protocol import BenchOptions, LatencySummary, Measurement, Result
from edgeprune.errors import UserError
from edgeprune.results import ModelInfo, ResultsStore
from edgeprune.results import store as store_module
from edgeprune.results.dbfile import APPLICATION_ID

SHA = "d" * 64
NEW_COLUMNS = ("p50_lo_ms", "p50_hi_ms", "p90_lo_ms", "p90_hi_ms", "group_id")

V2_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    command TEXT NOT NULL DEFAULT '',
    options_json TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    device TEXT NOT NULL,
    job_id TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    model_name TEXT NOT NULL,
    threads INTEGER NOT NULL,
    xnnpack INTEGER NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    p50_ms REAL, p90_ms REAL, p99_ms REAL, mean_ms REAL, std_ms REAL, min_ms REAL,
    runs INTEGER,
    init_ms REAL, first_invoke_ms REAL, peak_rss_kb INTEGER,
    size_bytes INTEGER, gzip_bytes INTEGER, quantization TEXT, sparsity REAL,
    accuracy REAL, accuracy_source TEXT,
    runtime TEXT, runtime_version TEXT, sparse_path INTEGER,
    device_model TEXT, warnings TEXT,
    started_at REAL, finished_at REAL,
    result_json TEXT NOT NULL,
    UNIQUE (device, job_id, threads, xnnpack)
);
CREATE INDEX IF NOT EXISTS measurements_run ON measurements(run_id);
CREATE INDEX IF NOT EXISTS measurements_model ON measurements(model_sha256);
CREATE TABLE IF NOT EXISTS latencies (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    device TEXT NOT NULL,
    job_id TEXT NOT NULL,
    measurement INTEGER NOT NULL,
    count INTEGER NOT NULL,
    encoding TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (device, job_id, measurement)
);
"""


V2_ROW_COLUMNS = (
    "run_id, device, job_id, model_sha256, model_name, threads, xnnpack, status, p50_ms, "
    "p90_ms, p99_ms, mean_ms, std_ms, min_ms, runs, warnings, result_json"
)


def latencies(runs: int) -> list[float]:
    """Distinct, shuffled values: the order statistics are known from the sorted list."""
    return [1.0 + ((i * 37) % runs) / runs for i in range(runs)]


def result(job: str, runs: int, group: str | None = None) -> Result:
    values = latencies(runs)
    return Result(
        job_id=job,
        model_sha256=SHA,
        status="ok",
        options=BenchOptions(runs=runs),
        measurements=[
            Measurement(
                threads=1,
                xnnpack=True,
                latencies_ms=values,
                summary=LatencySummary.of(values),
                rounds=[runs // 2, runs - runs // 2] if group else None,
            )
        ],
        group=group,
        started_at=1.0,
        finished_at=2.0,
    )


def make_v2_db(path: Path) -> None:
    """A DB as edgeprune's schema v2 left it: one run, one measurement row, no new columns."""
    old = result("old-job", 50)
    old.group = None
    document = old.to_dict()
    for key in ("group", "members"):  # what a v2-era agent's result did not have
        document.pop(key)
    for measurement in document["measurements"]:
        measurement["latencies_ms"] = []
        measurement.pop("rounds")
        measurement.pop("precision")
        for key in ("p50_ci", "p90_ci", "p99_ci", "confidence"):
            measurement["summary"].pop(key)
    summary = old.measurements[0].summary
    assert summary is not None
    with sqlite3.connect(path) as conn:
        conn.executescript(V2_SCHEMA)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 2")
        conn.execute("INSERT INTO runs (created_at, command) VALUES (1.0, 'bench')")
        conn.execute(
            f"INSERT INTO measurements ({V2_ROW_COLUMNS}) VALUES "
            "(1, 'dev', 'old-job', ?, 'old.tflite', 1, 1, 'ok', ?, ?, ?, ?, ?, ?, 50, '[]', ?)",
            (
                SHA,
                summary.p50,
                summary.p90,
                summary.p99,
                summary.mean,
                summary.std,
                summary.min,
                json.dumps(document),
            ),
        )
    conn.close()


def columns(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        names = [row[1] for row in conn.execute("PRAGMA table_info(measurements)")]
    conn.close()
    return names


def test_the_frozen_v2_schema_lacks_exactly_the_new_columns(tmp_path: Path):
    make_v2_db(tmp_path / "v2.db")
    old = columns(tmp_path / "v2.db")
    fresh = ResultsStore(tmp_path / "v3.db")
    assert fresh.measurements() == []
    new = columns(tmp_path / "v3.db")
    assert [c for c in new if c not in old] == list(NEW_COLUMNS)
    assert set(store_module.COLUMNS) | {"result_json"} == set(new)


def test_a_v2_db_is_read_as_it_is_by_a_reader(tmp_path: Path):
    db = tmp_path / "v2.db"
    make_v2_db(db)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    rows = ResultsStore(db, create=False).measurements(with_json=True)
    assert [r["job_id"] for r in rows] == ["old-job"]
    assert all(rows[0][c] is None for c in NEW_COLUMNS)
    summary = result("x", 50).measurements[0].summary
    assert summary is not None and rows[0]["p50_ms"] == pytest.approx(summary.p50)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert "p50_lo_ms" not in columns(db)


def test_a_v2_db_is_migrated_in_place_and_keeps_its_rows(tmp_path: Path):
    db = tmp_path / "v2.db"
    make_v2_db(db)
    store = ResultsStore(db)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store_module.SCHEMA_VERSION
    conn.close()
    assert columns(db)[-5:] == list(NEW_COLUMNS)  # added at the end, the old ones untouched
    (old_run,) = store.runs()  # v2 kept no outcome: one with measurements was ok
    assert (old_run["kind"], old_run["status"], old_run["error"]) == ("bench", "ok", None)
    run = store.begin_run("bench")
    assert run == 2
    assert store.add_result(run, "dev", result("new-job", 50, group="g-1"), ModelInfo("n", SHA))
    old, new = ResultsStore(db, create=False).measurements(with_json=True)
    assert old["job_id"] == "old-job" and all(old[c] is None for c in NEW_COLUMNS)
    assert old["result"]["measurements"][0]["summary"]["p50"] == old["p50_ms"]
    assert new["group_id"] == "g-1" and new["p50_lo_ms"] < new["p50_ms"] < new["p50_hi_ms"]
    assert new["result"]["measurements"][0]["rounds"] == [25, 25]  # rounds stay in the JSON
    ResultsStore(db)  # opening it again changes nothing
    assert columns(db)[-5:] == list(NEW_COLUMNS)


def test_a_db_is_refused_as_newer_by_the_previous_reader(tmp_path: Path, monkeypatch):
    db = tmp_path / "new.db"
    ResultsStore(db).begin_run("bench")
    now = store_module.SCHEMA_VERSION
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", now - 1)  # the previous release's reader
    with pytest.raises(UserError, match=f"schema version {now}, newer than this edgeprune"):
        ResultsStore(db, create=False)


def test_rows_carry_the_intervals_of_the_summary(tmp_path: Path):
    store = ResultsStore(tmp_path / "r.db")
    run = store.begin_run("bench")
    store.add_result(run, "dev", result("fifty", 50, group="g-2"), ModelInfo("a", SHA))
    store.add_result(run, "dev", result("five", 5), ModelInfo("b", SHA))
    fifty, five = store.measurements([run])
    ordered = sorted(latencies(50))
    # n = 50: the p50's 95 % interval is the 18th and 33rd smallest runs (exact binomial)
    assert (fifty["p50_lo_ms"], fifty["p50_hi_ms"]) == (ordered[17], ordered[32])
    summary = result("x", 50).measurements[0].summary
    assert summary is not None and summary.p90_ci is not None
    assert [fifty["p90_lo_ms"], fifty["p90_hi_ms"]] == summary.p90_ci
    assert fifty["group_id"] == "g-2"
    # n = 5 is too few runs for a 95 % interval of the median: NULL, not a made-up one
    assert all(five[c] is None for c in NEW_COLUMNS)
    assert five["p50_ms"] is not None
