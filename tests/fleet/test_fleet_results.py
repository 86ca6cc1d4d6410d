"""The results store on real SQLite, and the `results` commands made from it."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from device_agents.protocol import BenchOptions, LatencySummary, Measurement, Result, Warning_
from edgeprune.errors import UserError
from edgeprune.results import ModelInfo, ResultsStore, compare_rows, summary_rows

SHA_A = "a" * 64
SHA_B = "b" * 64


def make_result(
    job: str, sha: str, latencies: dict[int, list[float]], top1=None, status="ok"
) -> Result:
    measurements = [
        Measurement(
            threads=threads,
            xnnpack=True,
            latencies_ms=values,
            summary=LatencySummary.of(values),
            init_ms=1.5,
            peak_rss_kb=50_000,
            outputs={"top1": top1} if top1 is not None else None,
        )
        for threads, values in latencies.items()
    ]
    return Result(
        job_id=job,
        model_sha256=sha,
        status=status,
        error=None if status == "ok" else "runtime_missing: no TFLite runtime",
        runtime={"name": "ai_edge_litert", "version": "2.3.0"},
        options=BenchOptions(threads=list(latencies) or [1]),
        measurements=measurements if status == "ok" else [],
        warnings=[Warning_("high_spread", "noisy"), Warning_("high_spread", "noisy again")],
        device={"board_model": "Raspberry Pi 5 Model B"},
        started_at=1.0,
        finished_at=2.0,
    )


def fill(store: ResultsStore, factor: float = 1.0) -> int:
    run = store.begin_run("bench", {"threads": [1, 4]})
    a = ModelInfo(
        "dense.tflite", SHA_A, size_bytes=4_000_000, accuracy=0.97, accuracy_source="manifest"
    )
    b = ModelInfo(
        "sparse.tflite", SHA_B, size_bytes=1_500_000, accuracy=0.95, accuracy_source="device"
    )
    for device in ("pi4", "pi5"):
        store.add_result(
            run,
            device,
            make_result(
                f"{device}-a-{run}", SHA_A, {1: [10.0 * factor] * 5, 4: [4.0 * factor] * 5}
            ),
            a,
        )
        store.add_result(
            run,
            device,
            make_result(f"{device}-b-{run}", SHA_B, {1: [5.0 * factor] * 5, 4: [2.5 * factor] * 5}),
            b,
        )
    return run


def test_store_rows_speedups_and_idempotent_adds(tmp_path: Path):
    store = ResultsStore(tmp_path / "r.db")
    run = fill(store)
    rows = store.measurements([run])
    assert len(rows) == 8
    assert rows[0]["warnings"] == ["high_spread"]  # one code once
    assert rows[0]["device_model"] == "Raspberry Pi 5 Model B"
    again = store.add_result(
        run,
        "pi4",
        make_result(f"pi4-a-{run}", SHA_A, {1: [10.0] * 5, 4: [4.0] * 5}),
        ModelInfo("dense.tflite", SHA_A),
    )
    assert again == 0 and len(store.measurements([run])) == 8
    table = summary_rows(rows)
    sparse_pi4_1 = next(
        r
        for r in table
        if r["model"] == "sparse.tflite" and r["device"] == "pi4" and r["threads"] == 1
    )
    assert sparse_pi4_1["speedup"] == pytest.approx(2.0)
    assert sparse_pi4_1["accuracy"] == 0.95 and sparse_pi4_1["accuracy_source"] == "device"
    assert all(r["speedup"] == pytest.approx(1.0) for r in table if r["baseline"])
    # the baseline can be chosen
    flipped = summary_rows(rows, baseline_sha256=SHA_B)
    dense = next(
        r
        for r in flipped
        if r["model"] == "dense.tflite" and r["device"] == "pi5" and r["threads"] == 4
    )
    assert dense["speedup"] == pytest.approx(2.5 / 4.0)


def test_error_results_are_kept_as_error_rows(tmp_path: Path):
    store = ResultsStore(tmp_path / "r.db")
    run = store.begin_run()
    store.add_result(
        run, "pi4", make_result("job-err", SHA_A, {}, status="error"), ModelInfo("m.tflite", SHA_A)
    )
    (row,) = store.measurements([run])
    assert row["status"] == "error" and "runtime_missing" in row["error"] and row["p50_ms"] is None
    (line,) = summary_rows([row])
    assert line["speedup"] is None


def test_two_writers_at_once_both_land(tmp_path: Path):
    db = tmp_path / "r.db"
    ResultsStore(db)
    code = (
        "import sys; from edgeprune.results import ResultsStore, ModelInfo;"
        "sys.path.insert(0, sys.argv[2]); from test_fleet_results import make_result, SHA_A;"
        "s = ResultsStore(sys.argv[1]);"
        "[s.add_result(s.begin_run(), 'dev', make_result(f'p{sys.argv[3]}-{i}', SHA_A, {1: [1.0, 2.0]}), ModelInfo('m', SHA_A)) for i in range(40)]"
    )
    here = str(Path(__file__).parent)
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(db), here, str(n)]) for n in range(2)
    ]
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            store = ResultsStore(db)
            for i in range(40):
                store.add_result(
                    store.begin_run(),
                    "dev",
                    make_result(f"t-{i}", SHA_A, {1: [1.0]}),
                    ModelInfo("m", SHA_A),
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    assert [p.wait(120) for p in procs] == [0, 0]
    thread.join(120)
    assert not errors
    assert len(ResultsStore(db).measurements()) == 120
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_locked_corrupt_and_newer_dbs_are_clear_errors(tmp_path: Path, run_cli):
    db = tmp_path / "r.db"
    store = ResultsStore(db, busy_timeout=0.2)
    fill(store)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(UserError, match=r"is locked by another process \(waited 0.2 s\)"):
            store.begin_run()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.begin_run() > 0  # fine once the lock is gone

    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not sqlite" * 100)
    before = corrupt.read_bytes()
    for args in (
        ["results", "list"],
        ["results", "show"],
        ["results", "export"],
        ["results", "report"],
    ):
        outcome = run_cli(*args, "--db", corrupt)
        assert outcome.code == 2, (args, outcome.err)
        assert (
            outcome.err.startswith("error: results DB")
            and "is corrupt or not a SQLite file" in outcome.err
        )
        assert "Traceback" not in outcome.err
    assert corrupt.read_bytes() == before  # a bad DB is never "repaired" over the user's data

    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(UserError, match="schema version 99, newer than this edgeprune"):
        ResultsStore(newer)

    outcome = run_cli("results", "list", "--db", tmp_path / "absent.db")
    assert outcome.code == 2 and "no results yet" in outcome.err
    assert not (tmp_path / "absent.db").exists()
    outcome = run_cli("results", "list", "--db", tmp_path / "no-dir" / "r.db")
    assert outcome.code == 2
    with pytest.raises(UserError, match="directory .* does not exist"):
        ResultsStore(tmp_path / "no-dir" / "r.db")


def test_results_commands(tmp_path: Path, run_cli):
    db = tmp_path / "r.db"
    store = ResultsStore(db)
    first = fill(store)
    second = fill(store, factor=0.5)

    outcome = run_cli("results", "list", "--db", db, "--json")
    runs = json.loads(outcome.out)["runs"]
    assert [r["id"] for r in runs] == [second, first]
    assert runs[0]["devices"] == ["pi4", "pi5"] and runs[0]["rows"] == 8 and runs[0]["models"] == 2

    outcome = run_cli(
        "results", "show", "--db", db, "--device", "pi5", "--model", "sparse.tflite", "--json"
    )
    shown = json.loads(outcome.out)
    assert shown["runs"] == [second] and {r["device"] for r in shown["rows"]} == {"pi5"}
    assert {r["model"] for r in shown["rows"]} == {"sparse.tflite"}
    outcome = run_cli("results", "show", "latest~1", "--db", db)
    assert outcome.code == 0 and "sparse.tflite" in outcome.out

    outcome = run_cli("results", "compare", str(first), "latest", "--db", db, "--json")
    compared = json.loads(outcome.out)
    assert compared["runs"] == [first, second] and len(compared["rows"]) == 8
    assert all(r["ratio_last_to_first"] == pytest.approx(0.5) for r in compared["rows"])
    assert direct_compare(store, first, second) == compared["rows"]

    outcome = run_cli("results", "export", str(first), "--db", db)
    rows = list(csv.DictReader(io.StringIO(outcome.out)))
    assert len(rows) == 8 and rows[0]["warnings"] == "high_spread" and float(rows[0]["p50_ms"]) > 0
    out = tmp_path / "all.json"
    outcome = run_cli("results", "export", "--db", db, "--out", out)
    exported = json.loads(out.read_text())
    assert len(exported) == 16 and exported[0]["result"]["runtime"]["name"] == "ai_edge_litert"

    html = tmp_path / "report.html"
    outcome = run_cli("results", "report", str(first), str(second), "--db", db, "--html", html)
    assert outcome.code == 0, outcome.err
    page = html.read_text()
    pngs = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(pngs) == 2  # latency vs size, latency vs accuracy
    for index, data in enumerate(pngs):
        raw = base64.b64decode(data)
        assert raw.startswith(b"\x89PNG") and len(raw) > 5000
        (tmp_path / f"plot{index}.png").write_bytes(raw)
    assert page.count("<tr") == 1 + 16 and "sparse.tflite" in page and "(baseline)" in page


def direct_compare(store: ResultsStore, first: int, second: int):
    return compare_rows(store.measurements([first, second], with_json=True), [first, second])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["results", "show", "12abc"], "use a run id"),
        (["results", "show", "999"], "run 999 is not in"),
        (["results", "show", "latest~7"], "holds only 2 run"),
        (["results", "compare", "latest"], "two or more different runs"),
        (["results", "compare", "latest", "latest"], "two or more different runs"),
        (["results", "export", "--out", "x.txt"], "end it with .csv or .json"),
        (["results", "export", "--format", "xml"], "--format 'xml' is unknown"),
        (["results", "report", "--html", "nodir/r.html"], "does not exist"),
        (["results", "report", "--html", "report.pdf"], "must end with .html"),
    ],
)
def test_results_bad_input(tmp_path: Path, run_cli, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "r.db"
    store = ResultsStore(db)
    fill(store)
    fill(store)
    outcome = run_cli(*args, "--db", db)
    assert outcome.code == 2 and message in outcome.err, outcome.err
    assert "Traceback" not in outcome.err
    assert not (tmp_path / "x.txt").exists()
