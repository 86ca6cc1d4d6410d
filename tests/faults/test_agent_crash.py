"""The agent dies mid-job (kill -9) and the board power-cycles, while `edgeprune bench` waits.

What must hold: every job ends with exactly one stored result; a job that was interrupted is
re-run once and its result says so (`rerun_after_interruption`); none runs to completion
twice; nothing is left queued, running or unacknowledged on the board. The models go one
job each (`--no-interleave`) so that kills land between and inside several jobs.
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
import time
from pathlib import Path

import pytest
from support.fixtures import board_processes, padded_model_variants
from support.sshd import sshd_available

from .harness import finished, listing, start_edgeprune, wait_for

pytestmark = pytest.mark.skipif(not sshd_available(), reason="OpenSSH server not installed")


def running_job(spool: Path, exclude: set[str]) -> str | None:
    """A job in jobs/running/ whose benchmark child is alive (not one of `exclude`)."""
    for name in listing(spool / "jobs" / "running", ".json"):
        job_id = name[: -len(".json")]
        if job_id not in exclude and bench_children(job_id):
            return job_id
    return None


def bench_children(job_id: str) -> list[int]:
    """Pids of live benchmark children of this job (from /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"device_agents.bench_child" in argv and job_id.encode() in argv:
                pids.append(int(entry.name))
    return pids


def stored(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute("SELECT job_id, status, result_json FROM measurements"))


def assert_board_drained(spool: Path) -> None:
    for sub in ("jobs/queued", "jobs/running", "jobs/attempts"):
        assert listing(spool / sub) == [], sub
    assert listing(spool / "results", ".json") == []  # every result was acknowledged


def test_kill9_and_a_reboot_mid_bench_lose_nothing_and_run_nothing_twice(
    ready_fleet, board_daemons, large_tflite, tmp_path, figures
):
    fleet = ready_fleet(1, retries=4)
    device = fleet["dev1"]
    spool = device.spool
    daemon = board_daemons(device)
    models = padded_model_variants(large_tflite, 4, tmp_path / "models")
    db = tmp_path / "r.db"
    proc = start_edgeprune(
        "bench", *models, "--device", "dev1", "--runs", "600", "--warmup", "0", "--no-interleave",
        "--db", db, "--inventory", fleet.inventory_path, "--json",
        out_dir=tmp_path / "bench",
    )  # fmt: skip
    interrupted: list[str] = []
    try:
        # 1. the agent crashes mid-job; it is restarted (systemd's Restart=on-failure)
        interrupted.append(wait_for(lambda: running_job(spool, set()), 300, "a job to run"))
        daemon.kill9()
        wait_for(lambda: not bench_children(interrupted[0]), 30, "its benchmark child to die")
        daemon.start()
        # 2. a later job is running when the board loses power: everything dies, sshd too
        interrupted.append(
            wait_for(lambda: running_job(spool, set(interrupted)), 300, "another job to run")
        )
        daemon.reboot(down_seconds=1.0)
        assert board_processes(device) == []
        daemon.start()
        run = finished(proc, tmp_path / "bench", timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert run.code == 0, run.err
    rows = stored(db)
    assert sorted(r[0] for r in rows) == sorted(set(r[0] for r in rows))  # one row per job
    assert len(rows) == len(models) and all(status == "ok" for _, status, _ in rows)
    log = (spool / "logs" / "agent.log").read_text()
    for job_id, _, result_json in rows:
        assert len(re.findall(rf"finished job {re.escape(job_id)}:", log)) == 1, job_id
        warnings = {w["code"] for w in json.loads(result_json)["warnings"]}
        assert ("rerun_after_interruption" in warnings) == (job_id in interrupted), job_id
    assert_board_drained(spool)
    figures("agent crash", injected=2, survived=2, jobs=len(models), lost=0, duplicated=0)


@pytest.mark.faults
def test_repeated_random_kills_every_job_gets_exactly_one_reported_result(
    ready_fleet, board_daemons, large_tflite, tmp_path, figures
):
    """kill -9 at random moments, over and over: a job interrupted twice is reported failed."""
    fleet = ready_fleet(1, retries=4)
    device = fleet["dev1"]
    spool = device.spool
    daemon = board_daemons(device)
    models = padded_model_variants(large_tflite, 8, tmp_path / "models")
    db = tmp_path / "r.db"
    proc = start_edgeprune(
        "bench", *models, "--device", "dev1", "--runs", "400", "--warmup", "0", "--no-interleave",
        "--db", db, "--inventory", fleet.inventory_path, "--json",
        out_dir=tmp_path / "bench",
    )  # fmt: skip
    rng = random.Random(9)
    kills = 0
    try:
        wait_for(lambda: running_job(spool, set()), 300, "the first job")
        while proc.poll() is None and kills < 10:
            wait_for(lambda: running_job(spool, set()) or proc.poll() is not None, 300, "a job")
            if proc.poll() is not None:
                break
            time.sleep(rng.uniform(0.0, 0.8))
            daemon.kill9()
            kills += 1
            daemon.start()
        run = finished(proc, tmp_path / "bench", timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    rows = stored(db)
    job_ids = [r[0] for r in rows]
    assert len(job_ids) == len(set(job_ids)) == len(models)
    failed = [r for r in rows if r[1] != "ok"]
    for _, _, result_json in failed:
        assert json.loads(result_json)["error_kind"] == "interrupted"
    assert run.code == (3 if failed else 0), run.err
    log = (spool / "logs" / "agent.log").read_text()
    for job_id in job_ids:
        assert len(re.findall(rf"finished job {re.escape(job_id)}:", log)) == 1, job_id
    assert_board_drained(spool)
    figures("agent crash", injected=kills, survived=kills, jobs=len(models), lost=0, duplicated=0)
