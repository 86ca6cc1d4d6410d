"""Ctrl-C (and SIGTERM) of a host command cancels the jobs it submitted, on real boards.

Each test runs the real `edgeprune` CLI as its own process against a real sshd device (with
or without the agent daemon) or `local`, interrupts it once its job runs on the board, and
checks what a user would: exit 130, one line per cancelled job, a `cancelled` result on the
device, no benchmark process left, and that the next bench is not held up by the old job
(by the agent's own timestamps and order: no absolute timing asserts).

The acceptance case (Ctrl-C with the daemon) and `local` run by default; SIGTERM, a second
Ctrl-C with a restart, the earlier-job note and the recipe run are marked `faults`.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from support.signals import default_sigint
from support.sshd import sshd_available

from device_agents.protocol import Result

from .harness import EDGEPRUNE, REPO, Run, edgeprune, finished, listing, wait_for

pytestmark = pytest.mark.skipif(not sshd_available(), reason="OpenSSH server not installed")

LONG_RUNS = 100_000
LONG_DELAY_MS = 1.0  # a floor under each run, so the long job is long on any machine
LONG = ("--runs", str(LONG_RUNS), "--delay-ms", str(LONG_DELAY_MS), "--warmup", "0")


def bench_children() -> list[int]:
    """Pids of live benchmark children (any spool), from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state != "Z" and b"device_agents.bench_child" in argv:
                pids.append(int(entry.name))
    return pids


def running_job(spool: Path) -> str | None:
    """The job in jobs/running/ once its benchmark child runs."""
    names = listing(spool / "jobs" / "running", ".json")
    if names and bench_children():
        return names[0][: -len(".json")]
    return None


def start(*args: object, out_dir: Path, group: bool = False) -> subprocess.Popen[bytes]:
    """`edgeprune ARGS` in the background (`group`: in its own process group, as a shell
    job is, so a signal can go to the whole group the way a terminal's Ctrl-C does)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "out", "wb") as out, open(out_dir / "err", "wb") as err:
        return subprocess.Popen(
            [str(EDGEPRUNE), *map(str, args)],
            stdout=out,
            stderr=err,
            cwd=str(REPO),
            start_new_session=group,
            preexec_fn=default_sigint,
        )


def result_on_board(spool: Path, job_id: str) -> Result:
    return Result.from_json((spool / "results" / f"{job_id}.json").read_text())


def assert_cancelled(run: Run, spool: Path, job_id: str, model: str, device: str = "dev1"):
    assert run.code == 130, run.err
    assert f"{device}: cancelled job {job_id} (model {model})" in run.err, run.err
    assert "Traceback" not in run.err
    result = result_on_board(spool, job_id)
    assert (result.status, result.error) == ("cancelled", "cancelled by the host")
    assert result.measurements == []
    wait_for(lambda: not bench_children(), 10, "no benchmark process left")
    assert listing(spool / "jobs" / "queued") == listing(spool / "jobs" / "running") == []
    return result


def assert_next_bench_not_delayed(
    spool: Path, cancelled: Result, device: str, model: Path, db: Path, *extra: object
) -> None:
    """A following 20-run bench runs right after the cancelled job ended, not after the
    100 000 runs it would otherwise have waited for (the agent's timestamps say which)."""
    quick = edgeprune(
        "bench", model, "--device", device, "--runs", "20", "--db", db, "--json", *extra,
        timeout=300,
    )  # fmt: skip
    assert quick.code == 0, quick.err
    assert "from an earlier command" not in quick.err
    (row,) = quick.json["rows"]
    with sqlite3.connect(db) as conn:
        (text,) = conn.execute(
            "SELECT result_json FROM measurements WHERE status = 'ok'"
        ).fetchone()
    second = Result.from_json(text)
    assert second.started_at >= cancelled.finished_at  # it ran after the cancelled job ended
    per_run_s = (second.measurements[0].summary.mean + LONG_DELAY_MS) / 1000  # type: ignore[union-attr]
    would_have_taken = LONG_RUNS * per_run_s
    took = cancelled.finished_at - cancelled.started_at
    assert took < would_have_taken / 5, (took, would_have_taken)
    assert row["status"] == "ok"


def test_ctrl_c_cancels_the_running_job_and_the_next_bench_is_not_delayed(
    ready_fleet, board_daemons, tiny_tflite, tmp_path
):
    fleet = ready_fleet(1)
    spool = Path(fleet["dev1"].spool)
    daemon = board_daemons(fleet["dev1"])
    db = tmp_path / "r.db"
    inventory = ("--inventory", fleet.inventory_path)
    proc = start(
        "bench", tiny_tflite, "--device", "dev1", *LONG, "--db", db, *inventory,
        out_dir=tmp_path / "long",
    )  # fmt: skip
    job_id = wait_for(lambda: running_job(spool), 120, "the long job to run on the board")
    proc.send_signal(signal.SIGINT)
    run = finished(proc, tmp_path / "long", timeout=60)
    cancelled = assert_cancelled(run, spool, job_id, tiny_tflite.name)
    assert "cancelled: its benchmark process was killed" in daemon.log.read_text()
    assert_next_bench_not_delayed(spool, cancelled, "dev1", tiny_tflite, db, *inventory)
    # a restarted daemon never runs the cancelled job again
    daemon.stop()
    board_daemons(fleet["dev1"])
    time.sleep(0.5)
    assert daemon.log.read_text().count(f"running job {job_id}") == 1
    assert result_on_board(spool, job_id).status == "cancelled"


@pytest.mark.faults  # ~25-130 s: the CLI's start-up (and training) dominate
def test_sigterm_cancels_running_and_queued_jobs_without_a_daemon(
    ready_fleet, tiny_tflite, tiny_tflite_b, tmp_path
):
    """No daemon: the host's own `serve --once` runs the jobs; one runs, one waits queued."""
    fleet = ready_fleet(1)
    spool = Path(fleet["dev1"].spool)
    proc = start(
        "bench", tiny_tflite, tiny_tflite_b, "--no-interleave", "--device", "dev1", *LONG,
        "--db", tmp_path / "r.db", "--inventory", fleet.inventory_path, out_dir=tmp_path / "b",
    )  # fmt: skip
    first = wait_for(lambda: running_job(spool), 120, "the first job to run")
    queued = listing(spool / "jobs" / "queued", ".json")
    assert len(queued) == 1
    second = queued[0][: -len(".json")]
    proc.send_signal(signal.SIGTERM)
    run = finished(proc, tmp_path / "b", timeout=60)
    assert_cancelled(run, spool, first, tiny_tflite.name)
    assert f"dev1: cancelled job {second} (model {tiny_tflite_b.name})" in run.err
    assert result_on_board(spool, second).status == "cancelled"
    assert_no_rows(tmp_path / "r.db")


def assert_no_rows(db: Path) -> None:
    """Nothing half-done was stored: no measurement of the interrupted jobs."""
    if db.exists():
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM measurements").fetchone() == (0,)


@pytest.mark.faults  # ~25-130 s: the CLI's start-up (and training) dominate
def test_a_second_ctrl_c_exits_at_once_and_the_restarted_daemon_never_reruns_the_job(
    ready_fleet, board_daemons, tiny_tflite, tmp_path
):
    """The daemon is frozen (SIGSTOP), so the cancel cannot finish: the second Ctrl-C ends
    the command at once. The mark stays; the daemon, killed and restarted, honours it."""
    fleet = ready_fleet(1)
    spool = Path(fleet["dev1"].spool)
    daemon = board_daemons(fleet["dev1"])
    proc = start(
        "bench", tiny_tflite, "--device", "dev1", *LONG, "--db", tmp_path / "r.db",
        "--inventory", fleet.inventory_path, out_dir=tmp_path / "b",
    )  # fmt: skip
    job_id = wait_for(lambda: running_job(spool), 120, "the job to run")
    assert daemon.proc is not None
    os.kill(daemon.proc.pid, signal.SIGSTOP)
    try:
        proc.send_signal(signal.SIGINT)
        wait_for(lambda: (spool / "jobs" / "cancel" / job_id).exists(), 30, "the cancel mark")
        proc.send_signal(signal.SIGINT)
        run = finished(proc, tmp_path / "b", timeout=10)
    finally:
        daemon.kill9()  # SIGKILL ends a stopped process too; its child dies by PDEATHSIG
    assert run.code == 130, run.err
    assert f"interrupted again: dev1 may still be finishing job {job_id}" in run.err, run.err
    assert "Traceback" not in run.err
    assert listing(spool / "jobs" / "running") == [f"{job_id}.json"]  # the agent died on it
    board_daemons(fleet["dev1"])
    wait_for(lambda: (spool / "results" / f"{job_id}.json").exists(), 30, "its result")
    assert result_on_board(spool, job_id).status == "cancelled"
    log = daemon.log.read_text()
    assert f"job {job_id} was cancelled while the agent was down; not re-queued" in log
    assert log.count(f"running job {job_id}") == 1


def test_ctrl_c_at_the_terminal_cancels_a_local_bench(tiny_tflite, tmp_path, monkeypatch):
    """`local`: the signal goes to the whole process group, as a terminal sends it."""
    spool = Path(os.environ["XDG_DATA_HOME"]) / "edgeprune" / "local-spool"
    db = tmp_path / "r.db"
    proc = start(
        "bench", tiny_tflite, "--device", "local", *LONG, "--db", db,
        out_dir=tmp_path / "b", group=True,
    )  # fmt: skip
    job_id = wait_for(lambda: running_job(spool), 120, "the local job to run")
    os.killpg(proc.pid, signal.SIGINT)
    run = finished(proc, tmp_path / "b", timeout=60)
    cancelled = assert_cancelled(run, spool, job_id, tiny_tflite.name, device="local")
    assert_next_bench_not_delayed(spool, cancelled, "local", tiny_tflite, db)


@pytest.mark.faults  # ~25-130 s: the CLI's start-up (and training) dominate
def test_the_next_command_says_it_waits_for_an_earlier_job(ready_fleet, tiny_tflite, tmp_path):
    """A job another command left in the queue (or one the agent re-queued after a crash) is
    named once; the host's `serve --once` runs it before ours."""
    fleet = ready_fleet(1)
    device = fleet["dev1"]
    spool = Path(device.spool)
    python = spool / "venv" / "bin" / "python"
    earlier = subprocess.run(
        [str(python), "-m", "device_agents", "submit", str(tiny_tflite), "--runs", "200",
         "--delay-ms", "5", "--id", "ep-earlier-1", "--spool", str(spool)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert earlier.stdout.split()[-1] == "ep-earlier-1"
    run = edgeprune(
        "bench", tiny_tflite, "--device", "dev1", "--runs", "5", "--db", tmp_path / "r.db",
        "--inventory", fleet.inventory_path, timeout=300,
    )  # fmt: skip
    assert run.code == 0, run.err
    lines = re.findall(r"dev1: finishing job .* from an earlier command first", run.err)
    assert lines == ["dev1: finishing job ep-earlier-1 from an earlier command first"], run.err
    assert (spool / "results" / "ep-earlier-1.json").exists()  # run first, left for its owner


@pytest.mark.faults  # ~25-130 s: the CLI's start-up (and training) dominate
def test_ctrl_c_in_the_bench_stage_of_a_recipe_run_cancels_its_job(tmp_path):
    """`edgeprune run`: interrupted while the variant is measured on `local`; nothing is
    recorded as measured, so a re-run measures it again."""
    spool = Path(os.environ["XDG_DATA_HOME"]) / "edgeprune" / "local-spool"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "name: tiny\n"
        "model: {demo: true, width: 8, train: {epochs: 1}}\n"
        "data: digits\n"
        "pipelines:\n  dense: {}\n"
        "devices: [local]\n"
        f"bench: {{runs: {LONG_RUNS}, delay_ms: {LONG_DELAY_MS}, warmup: 0}}\n"
    )
    workdir = tmp_path / "work"
    proc = start(
        "run", recipe, "--workdir", workdir, "--db", tmp_path / "r.db",
        out_dir=tmp_path / "run", group=True,
    )  # fmt: skip
    job_id = wait_for(lambda: running_job(spool), 300, "the recipe's bench job to run")
    os.killpg(proc.pid, signal.SIGINT)
    run = finished(proc, tmp_path / "run", timeout=60)
    assert run.code == 130, run.err
    assert re.search(rf"local: cancelled job {job_id} \(model \S+\.tflite\)", run.err), run.err
    assert "Traceback" not in run.err
    assert result_on_board(spool, job_id).status == "cancelled"
    assert not list(workdir.glob("bench/**/*.json"))  # no bench record: not measured
    assert_no_rows(tmp_path / "r.db")
