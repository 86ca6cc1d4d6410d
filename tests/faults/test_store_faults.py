"""The results store against files it does not own, racing first writers, and bloat.

A read-only command must leave any file it is pointed at exactly as it was; a foreign
SQLite file is refused before anything is written to it; a fresh DB is created 0600;
commands that first touch a fresh DB at the same moment all succeed; a result's raw
latencies are stored once, compactly, and what one result may hold is bounded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from device_agents.protocol import (
    MAX_KEPT_LATENCIES,
    BenchOptions,
    LatencySummary,
    Measurement,
    Result,
)
from edgeprune.errors import UserError
from edgeprune.results import ModelInfo, ResultsStore

SHA = "c" * 64


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name))


def _foreign_db(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        conn.execute("INSERT INTO notes (text) VALUES ('mine, not edgeprune''s')")
        conn.execute("PRAGMA user_version = 7")
    conn.close()


def _result(job: str, runs: int, threads: tuple[int, ...] = (1,)) -> Result:
    measurements = []
    for t in threads:
        values = [0.5 + ((i * 7919 + t) % 1000) / 997.0 for i in range(runs)]
        measurements.append(
            Measurement(
                threads=t,
                xnnpack=True,
                latencies_ms=values,
                summary=LatencySummary.of(values),
                init_ms=1.0,
                peak_rss_kb=1000,
                outputs={"top1": [1, 2, 3], "digest": "sha256:" + "0" * 64},
            )
        )
    return Result(
        job_id=job,
        model_sha256=SHA,
        status="ok",
        label="m.tflite",
        runtime={"name": "ai_edge_litert", "version": "2.3.0"},
        options=BenchOptions(threads=list(threads), runs=runs),
        measurements=measurements,
        device={"board_model": "test"},
        started_at=1.0,
        finished_at=2.0,
    )


# --------------------------------------------------------------------------- foreign files


def test_read_only_commands_leave_a_foreign_sqlite_file_untouched(tmp_path, run_cli, figures):
    other = tmp_path / "other.db"
    _foreign_db(other)
    before, names = _digest(other), _siblings(other)
    commands = (
        ["results", "list"],
        ["results", "show"],
        ["results", "export", "--out", "-"],
        ["results", "compare", "1", "2"],
        ["results", "report"],
    )
    refused = 0
    for args in commands:
        outcome = run_cli(*args, "--db", other)
        assert outcome.code == 2, (args, outcome.err)
        assert f"{str(other)!r} is not an edgeprune results DB" in outcome.err, outcome.err
        assert len(outcome.err.strip().splitlines()) == 1 and "Traceback" not in outcome.err
        refused += 1
    with pytest.raises(UserError, match="is not an edgeprune results DB"):
        ResultsStore(other)  # a writer refuses it too, before writing anything
    assert _digest(other) == before and _siblings(other) == names
    with sqlite3.connect(other) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 7
    conn.close()
    figures("store foreign file", injected=len(commands) + 1, refused=refused + 1, modified=0)


def test_read_only_commands_do_not_write_an_edgeprune_db(tmp_path, run_cli, figures):
    db = tmp_path / "r.db"
    store = ResultsStore(db)
    store.add_result(store.begin_run("bench"), "dev", _result("j1", 5), ModelInfo("m", SHA))
    del store
    before = _digest(db)
    os.chmod(db, 0o400)  # a read-only command must not need to write
    try:
        for args in (["results", "list"], ["results", "show"], ["results", "export", "--out", "-"]):
            outcome = run_cli(*args, "--db", db)
            assert outcome.code == 0, (args, outcome.err)
    finally:
        os.chmod(db, 0o600)
    assert _digest(db) == before
    figures("store read-only", commands=3, modified=0)


def test_a_db_of_the_previous_version_is_read_as_is_and_marked_on_write(tmp_path, run_cli):
    db = tmp_path / "old.db"
    store = ResultsStore(db)
    store.add_result(store.begin_run("bench"), "dev", _result("j1", 5), ModelInfo("m", SHA))
    with sqlite3.connect(db) as conn:  # what the previous version left: no mark, version 1
        conn.execute("DROP TABLE IF EXISTS latencies")
        conn.execute("PRAGMA application_id = 0")
        conn.execute("PRAGMA user_version = 1")
    conn.close()
    before = _digest(db)
    outcome = run_cli("results", "list", "--db", db)
    assert outcome.code == 0, outcome.err
    assert _digest(db) == before
    ResultsStore(db).begin_run("bench")  # its next write marks it
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] != 0
    conn.close()
    assert len(ResultsStore(db, create=False).measurements()) == 1


def test_a_new_db_is_private(tmp_path):
    old = os.umask(0o022)
    try:
        db = tmp_path / "new.db"
        store = ResultsStore(db)
        store.begin_run("bench")
    finally:
        os.umask(old)
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


# --------------------------------------------------------------------------- first touch


def test_commands_that_first_touch_a_fresh_db_at_once_all_succeed(tmp_path, figures):
    rounds, writers = 25, 6
    failures: list[str] = []
    for r in range(rounds):
        db = tmp_path / f"fresh-{r}.db"
        start = threading.Barrier(writers)

        def bench(n: int, db: Path = db, start: threading.Barrier = start, r: int = r) -> None:
            try:
                start.wait()
                store = ResultsStore(db)
                store.add_result(
                    store.begin_run("bench"), "dev", _result(f"j{n}", 3), ModelInfo("m", SHA)
                )
            except Exception as exc:
                failures.append(f"round {r} writer {n}: {exc}")

        threads = [threading.Thread(target=bench, args=(n,)) for n in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        if not failures:
            assert len(ResultsStore(db, create=False).measurements()) == writers
    figures("store first touch", injected=rounds * writers, failed=len(failures))
    assert not failures, failures[:3]


_WRITER = """
import sys, time
from device_agents.protocol import LatencySummary, Measurement, Result
from edgeprune.results import ModelInfo, ResultsStore
db, n, at = sys.argv[1], sys.argv[2], float(sys.argv[3])
m = Measurement(threads=1, xnnpack=True, latencies_ms=[1.0, 2.0],
                summary=LatencySummary.of([1.0, 2.0]))
result = Result(job_id="p" + n, model_sha256="c" * 64, status="ok", measurements=[m])
time.sleep(max(0.0, at - time.time()))
store = ResultsStore(db)
store.add_result(store.begin_run("bench"), "dev", result, ModelInfo("m", "c" * 64))
"""


def test_processes_that_first_touch_a_fresh_db_at_once_all_succeed(tmp_path, figures):
    rounds, writers = 4, 4
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    failed = 0
    for r in range(rounds):
        db = tmp_path / f"fresh-{r}.db"
        at = time.time() + 3.0  # every process is imported and waiting by then
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _WRITER, str(db), str(n), repr(at)],
                env=env,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(writers)
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            if proc.returncode != 0:
                failed += 1
                print(err.strip().splitlines()[-1:])
        if not failed:
            assert len(ResultsStore(db, create=False).measurements()) == writers
    figures("store first touch", injected=rounds * writers, failed=failed)
    assert failed == 0


def test_the_locked_message_reports_the_real_wait(tmp_path):
    db = tmp_path / "r.db"
    store = ResultsStore(db, busy_timeout=0.3)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        for timeout in (0.3, 1.0):
            began = time.monotonic()
            with pytest.raises(UserError, match=r"is locked by another process") as caught:
                ResultsStore(db, busy_timeout=timeout).begin_run()
            spent = time.monotonic() - began
            waited = float(re.search(r"waited ([0-9.]+) s", str(caught.value))[1])
            assert waited <= timeout and abs(waited - spent) < 0.2, (waited, spent)
            assert "\n" not in str(caught.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.begin_run() > 0


# --------------------------------------------------------------------------- bloat


def _db_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def test_latencies_are_stored_once_and_compactly(tmp_path, figures):
    runs, threads = 20_000, (1, 2, 4, 8)
    result = _result("big", runs, threads)
    text_bytes = len(result.to_json())
    db = tmp_path / "r.db"
    store = ResultsStore(db)
    store.add_result(store.begin_run("bench"), "dev", result, ModelInfo("m", SHA))
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    size = _db_size(db)
    (row, *_) = ResultsStore(db, create=False).measurements(with_json=True)
    kept = sum(min(runs, MAX_KEPT_LATENCIES) for _ in threads)
    # every kept latency at most once, as 8-byte floats, plus a few pages per row
    assert size < kept * 8 + 64 * 1024, (size, text_bytes)
    exported = row["result"]
    assert exported["job_id"] == "big" and len(exported["measurements"]) == len(threads)
    for m, original in zip(exported["measurements"], result.measurements, strict=True):
        assert m["latencies_ms"] == original.latencies_ms  # exact, in run order
        assert m["summary"]["count"] == runs
    figures("store bloat", runs=runs, thread_counts=len(threads), db_bytes=size)


def test_a_result_holds_a_bounded_sample_and_exact_statistics():
    values = [float(i % 997) for i in range(MAX_KEPT_LATENCIES * 3 + 5)]
    m = Measurement(threads=1, xnnpack=True, latencies_ms=values)
    assert len(m.latencies_ms) == MAX_KEPT_LATENCIES
    assert m.summary == LatencySummary.of(values)  # statistics over every run
    exact = LatencySummary.of(values)
    kept = Measurement(threads=1, xnnpack=True, latencies_ms=list(values), summary=exact)
    assert kept.summary is exact and kept.latencies_ms == m.latencies_ms
    text = json.dumps({"schema": 1, "job_id": "x", "model_sha256": SHA, "status": "ok"})
    assert Result.from_json(text).job_id == "x"


def test_an_oversized_result_is_refused_in_one_line():
    from device_agents.protocol import MAX_RESULT_BYTES, ProtocolError

    padding = "x" * (MAX_RESULT_BYTES + 1)
    text = json.dumps(
        {"schema": 1, "job_id": "x", "model_sha256": SHA, "status": "ok", "label": padding}
    )
    with pytest.raises(ProtocolError, match="larger than") as caught:
        Result.from_json(text)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 300


def test_the_largest_result_an_agent_can_write_is_one_the_host_accepts():
    from device_agents.protocol import MAX_RESULT_BYTES, MAX_THREAD_COUNTS

    values = [1 / 3 + i * 1e-9 for i in range(MAX_KEPT_LATENCIES)]  # 17-digit floats
    summary = LatencySummary.of(values)
    result = _result("worst", 1)
    result.measurements = [
        Measurement(threads=1, xnnpack=True, latencies_ms=values, summary=summary)
        for _ in range(MAX_THREAD_COUNTS)
    ]
    text = result.to_json()
    assert len(text) < MAX_RESULT_BYTES
    assert len(Result.from_json(text).measurements) == MAX_THREAD_COUNTS
