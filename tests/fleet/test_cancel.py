"""The host's side of interrupts (edgeprune.fleet.cancel): the token stops fan_out's wait at
once, real signals become `Interrupted`, registered jobs are cancelled on a real `local`
agent, earlier jobs are named once, and a cancelled result is stored as one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from device_agents.protocol import Result
from edgeprune.fleet.cancel import (
    CancelToken,
    CommandCancelled,
    Interrupted,
    SubmittedJob,
    active_token,
    cancel_pending,
    interrupt_cancels,
)
from edgeprune.fleet.fanout import fan_out
from edgeprune.fleet.inventory import Device, local_device
from edgeprune.fleet.remote_bench import QueuedJob, _note_earlier_jobs
from edgeprune.results.rows import ModelInfo
from edgeprune.results.store import ResultsStore


def boards(count: int) -> list[Device]:
    return [Device(name=f"dev{i}", kind="ssh") for i in range(1, count + 1)]


def stuck_worker(release: threading.Event, started: threading.Event):
    def work(device: Device) -> str:
        started.set()
        release.wait(60)  # a board that takes its time: fan_out must not wait for it
        return device.name

    return work


def test_fan_out_stops_waiting_as_soon_as_the_command_is_cancelled():
    release, started = threading.Event(), threading.Event()
    lines: list[str] = []
    try:
        with pytest.raises(Interrupted), interrupt_cancels(notify=lines.append) as token:
            threading.Thread(target=lambda: (started.wait(30), token.cancel())).start()
            fan_out(boards(3), stuck_worker(release, started))
        assert not release.is_set()  # the workers are still stuck: nobody waited for them
        assert lines == []  # nothing was submitted, so nothing to cancel
        assert active_token() is not token and not active_token().is_set
    finally:
        release.set()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_interrupt_the_wait_and_handlers_are_restored(signum):
    release, started = threading.Event(), threading.Event()
    before = signal.getsignal(signum)
    try:

        def send() -> None:
            started.wait(30)
            os.kill(os.getpid(), signum)

        threading.Thread(target=send).start()
        with pytest.raises(Interrupted), interrupt_cancels(notify=lambda _line: None):
            fan_out(boards(2), stuck_worker(release, started))
        assert not release.is_set()
    finally:
        release.set()
    assert signal.getsignal(signum) is before


def test_a_worker_outside_a_command_is_never_cancelled():
    assert fan_out(boards(2), lambda d: d.name).succeeded[1].value == "dev2"
    active_token().check()  # the token outside `interrupt_cancels` is never set


def test_nested_commands_share_one_token():
    with interrupt_cancels() as outer, interrupt_cancels() as inner:
        assert inner is outer is active_token()
    token = CancelToken()
    token.cancel()
    with pytest.raises(CommandCancelled):
        token.sleep(5)


def test_registered_jobs_are_cancelled_on_a_real_local_agent(tmp_path, tiny_tflite):
    device = local_device()
    spool = tmp_path / "spool"
    queued = subprocess.run(
        [sys.executable, "-m", "device_agents", "submit", str(tiny_tflite), "--runs", "5",
         "--id", "ep-local-1", "--spool", str(spool)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert queued.stdout.split()[-1] == "ep-local-1"
    token = CancelToken(notify=(lines := []).append)
    for job_id in ("ep-local-1", "ep-never-sent"):
        token.submitted(SubmittedJob(device, sys.executable, str(spool), job_id, "model m.tflite"))
    cancel_pending(token)
    assert lines == [
        "local: cancelled job ep-local-1 (model m.tflite)",
        "local: job ep-never-sent (model m.tflite) was not on the board; nothing to cancel",
    ]
    result = Result.from_json((spool / "results" / "ep-local-1.json").read_text())
    assert result.status == "cancelled"
    assert token.pending() == []  # both answered for: a second signal names neither


def test_an_unreachable_board_is_named_with_the_job_it_may_still_run(tmp_path):
    closed = Device(
        name="gone", kind="ssh", hostname="127.0.0.1", port=9, user="x", retries=0,
        connect_timeout=2.0, known_hosts=str(tmp_path / "known_hosts"),
    )  # fmt: skip
    token = CancelToken(notify=(lines := []).append)
    token.submitted(SubmittedJob(closed, "python3", "/spool", "ep-1", "model a.tflite"))
    cancel_pending(token)
    (line,) = lines
    assert [job.job_id for job in token.pending()] == ["ep-1"]  # it may still run there
    assert line.startswith("gone: could not cancel job ep-1 (model a.tflite): ")
    assert line.endswith("the board may still be running it")


def test_earlier_jobs_ahead_of_ours_are_named_once_per_device():
    token = CancelToken(notify=(lines := []).append)
    ours = [QueuedJob("ep-ours", [])]
    status = {"running": ["ep-orphan"], "queued": ["ep-old", "ep-ours", "ep-later"]}
    _note_earlier_jobs("dev1", status, ours, token)
    _note_earlier_jobs("dev1", status, ours, token)
    _note_earlier_jobs("dev2", {"running": [], "queued": ["ep-ours"]}, ours, token)
    assert lines == ["dev1: finishing jobs ep-orphan, ep-old from an earlier command first"]


def test_a_cancelled_result_is_stored_as_cancelled_without_numbers():
    store = ResultsStore.in_memory()
    run_id = store.begin_run("bench", {})
    result = Result(
        job_id="ep-c", model_sha256="a" * 64, status="cancelled", error="cancelled by the host"
    )
    store.add_result(run_id, "dev1", result, ModelInfo(name="a.tflite", sha256="a" * 64))
    (row,) = store.measurements([run_id])
    assert (row["status"], row["error"], row["p50_ms"]) == (
        "cancelled",
        "cancelled by the host",
        None,
    )
