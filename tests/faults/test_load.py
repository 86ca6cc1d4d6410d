"""Load: 200 jobs over 8 loopback devices from one command, and two `bench` commands at once.

Half the boards run a daemon (`wait` blocks on the board), half do not (`serve --once`
drains their queue), so both collection paths carry the load. Checked: exactly one stored
result per job (none missing, none twice), every board drained, the store consistent when
two commands write at once, and the host's memory flat while results pour in.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from support.fixtures import padded_model_variants
from support.sshd import sshd_available

from device_agents.integrity import sha256_file

from .harness import finished, listing, rss_kb, start_edgeprune

pytestmark = pytest.mark.skipif(not sshd_available(), reason="OpenSSH server not installed")


def rows_in(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
    except sqlite3.Error:
        return 0


class MemoryWatch:
    """Samples (stored rows, RSS KiB) of a running process every `every` seconds."""

    def __init__(self, pid: int, db: Path, every: float = 0.05) -> None:
        # often: with one agent session per device, results come home in bursts of a group
        self.samples: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(pid, db, every), daemon=True)
        self._thread.start()

    def _run(self, pid: int, db: Path, every: float) -> None:
        while not self._stop.is_set():
            rss = rss_kb(pid)
            if rss is None:
                return
            self.samples.append((rows_in(db), rss))
            time.sleep(every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def store_is_consistent(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        return conn.execute(
            "SELECT run_id, device, job_id, model_sha256, threads, status FROM measurements"
        ).fetchall()


def assert_boards_drained(fleet) -> None:
    for device in fleet.devices:
        for sub in ("jobs/queued", "jobs/running"):
            assert listing(device.spool / sub) == [], (device.name, sub)
        assert listing(device.spool / "results", ".json") == [], device.name


def start_daemons(fleet, board_daemons, names: list[str]) -> None:
    for name in names:
        board_daemons(fleet[name], poll=0.05)


def bench_args(models, db: Path, inventory: Path) -> list[object]:
    return [
        "bench", *models, "--tag", "sshd", "--runs", "3", "--warmup", "0",
        "--db", db, "--inventory", inventory, "--json",
    ]  # fmt: skip


@pytest.mark.faults
def test_200_jobs_over_8_devices_from_one_command(
    ready_fleet, board_daemons, tiny_tflite, tmp_path, figures
):
    fleet = ready_fleet(8, retries=3)
    start_daemons(fleet, board_daemons, ["dev1", "dev2", "dev3", "dev4"])
    models = padded_model_variants(tiny_tflite, 25, tmp_path / "models")
    db = tmp_path / "r.db"
    started = time.monotonic()
    proc = start_edgeprune(*bench_args(models, db, fleet.inventory_path), out_dir=tmp_path / "b")
    watch = MemoryWatch(proc.pid, db)
    try:
        run = finished(proc, tmp_path / "b", timeout=1500)
    finally:
        watch.stop()
        if proc.poll() is None:
            proc.kill()
    seconds = time.monotonic() - started
    assert run.code == 0, run.err[-3000:]
    rows = store_is_consistent(db)
    jobs = {(device, sha): job for _, device, job, sha, _, _ in rows}
    assert len(rows) == 200 and len(jobs) == 200  # every (device, model) exactly once
    assert len({job for _, _, job, _, _, _ in rows}) == 200
    assert all(status == "ok" for *_, status in rows)
    assert_boards_drained(fleet)
    # host memory is flat: what it holds once results flow is what it holds at the end
    early = [rss for stored, rss in watch.samples if 20 <= stored <= 60]
    # (while they flow: once all 200 are in, the summary's statistics load scipy once)
    late = [rss for stored, rss in watch.samples if 160 <= stored < 200]
    assert early and late, watch.samples[-5:]
    growth_mb = (max(late) - max(early)) / 1024
    assert growth_mb < 20, f"RSS grew by {growth_mb:.1f} MB from 40 to 200 results"
    figures(
        "load", jobs=200, devices=8, results_stored=len(rows), lost=0, duplicated=0,
        seconds=round(seconds), peak_rss_mb=round(max(r for _, r in watch.samples) / 1024),
        rss_growth_mb=round(growth_mb, 1),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("devices", "per_command"),
    [pytest.param(4, 3, id="quick"), pytest.param(8, 10, id="deep", marks=pytest.mark.faults)],
)
def test_two_bench_commands_writing_at_once_keep_the_store_consistent(
    ready_fleet, board_daemons, tiny_tflite, tmp_path, figures, devices, per_command
):
    fleet = ready_fleet(devices, retries=3)
    start_daemons(fleet, board_daemons, [f"dev{i + 1}" for i in range(devices // 2)])
    models = padded_model_variants(tiny_tflite, 2 * per_command, tmp_path / "models")
    db = tmp_path / "r.db"
    procs = [
        start_edgeprune(
            *bench_args(models[i::2], db, fleet.inventory_path), out_dir=tmp_path / f"b{i}"
        )
        for i in range(2)
    ]
    runs = [finished(proc, tmp_path / f"b{i}", timeout=1200) for i, proc in enumerate(procs)]
    for run in runs:
        assert run.code == 0, run.err[-3000:]
    rows = store_is_consistent(db)
    assert len({r.json["run_id"] for r in runs}) == 2
    for index, run in enumerate(runs):
        mine = [r for r in rows if r[0] == run.json["run_id"]]
        shas = {sha256_file(m) for m in models[index::2]}
        expected = {(f"dev{d + 1}", sha) for d in range(devices) for sha in shas}
        assert {(device, sha) for _, device, _, sha, _, _ in mine} == expected
        assert len(mine) == devices * per_command  # no duplicate, none missing
    assert len({job for _, _, job, _, _, _ in rows}) == len(rows) == 2 * devices * per_command
    assert_boards_drained(fleet)
    figures("load", jobs=len(rows), concurrent_commands=2, lost=0, duplicated=0)
