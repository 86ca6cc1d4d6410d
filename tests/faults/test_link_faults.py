"""The link to a board breaks (support.tcp_proxy between the host and the device's sshd).

Cuts are placed by byte count over the whole life of a deploy (handshake, login, `has`, the
SFTP session, the upload, `admit`), so every phase is hit, not just the middle of the upload.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from support.sshd import sshd_available

from device_agents.integrity import sha256_file
from device_agents.protocol import Result
from edgeprune.fleet import deploy, load_inventory, load_model

from .harness import finished, listing, start_edgeprune, wait_for

pytestmark = pytest.mark.skipif(not sshd_available(), reason="OpenSSH server not installed")


def device_of(fleet, name: str = "dev1", **changes):
    device = load_inventory(fleet.inventory_path).devices[name]
    return replace(device, **changes) if changes else device


def forget_models(spool: Path) -> None:
    for path in (spool / "models").glob("*.tflite"):
        path.unlink()


def deploy_through(fleet, model, name: str = "dev1", **changes):
    """One deploy of one model to one device; asserts no model is usable while it uploads."""
    target = fleet[name].spool / "models" / f"{model.sha256}.tflite"
    early: list[bool] = []

    def watch(_device: str, _label: str, done: int, total: int) -> None:
        if done < total:
            early.append(target.exists())

    outcome = deploy([device_of(fleet, name, **changes)], [model], progress=watch)[name]
    assert not any(early), "the model was usable on the device before its upload finished"
    return outcome


def assert_clean_model(spool: Path, model) -> None:
    target = spool / "models" / f"{model.sha256}.tflite"
    assert sha256_file(target) == model.sha256
    assert listing(spool / "incoming") == []  # no part file left behind


def test_a_cut_anywhere_in_a_deploy_is_retried_and_the_model_is_whole(
    ready_fleet, tiny_tflite, large_tflite, figures
):
    fleet = ready_fleet(1)
    spool = fleet["dev1"].spool
    proxy = fleet.proxy("dev1")
    tiny, large = load_model(tiny_tflite), load_model(large_tflite)

    # clean deploys first: how many bytes one whole session sends to the device (the
    # second one, as later deploys find incoming/ already made)
    for _ in range(2):
        forget_models(spool)
        before = proxy.stats.bytes_up
        assert deploy_through(fleet, tiny).ok
        session_bytes = proxy.stats.bytes_up - before
    assert session_bytes > 3000

    # a cut every ~5.5 % of the session; the last few hundred bytes vary from run to run
    cut_points = [(tiny, n) for n in range(120, int(session_bytes * 0.92), session_bytes // 18)]
    cut_points += [(large, int(large.size_bytes * f)) for f in (0.05, 0.5, 0.97)]
    survived, retries = 0, 0
    for model, after in cut_points:
        forget_models(spool)
        cuts = proxy.stats.cuts
        proxy.plan_cut(after_bytes=after)
        outcome = deploy_through(fleet, model)
        assert proxy.stats.cuts == cuts + 1, f"no cut happened at byte {after}"
        assert outcome.ok, f"cut at byte {after}: {outcome.message}"
        assert_clean_model(spool, model)
        survived += 1
        retries += outcome.value[0].retries
    figures("link cut", injected=len(cut_points), survived=survived, lost=0)
    assert survived == len(cut_points) and retries >= 3  # the upload-phase cuts resumed


def test_without_retries_a_cut_fails_clearly_and_leaves_nothing_usable(
    ready_fleet, tiny_tflite, large_tflite, figures
):
    fleet = ready_fleet(1)
    spool = fleet["dev1"].spool
    proxy = fleet.proxy("dev1")
    model = load_model(large_tflite)
    for after in (1800, int(model.size_bytes * 0.4)):  # during the hello (and its has), mid-upload
        proxy.plan_cut(after_bytes=after)
        outcome = deploy_through(fleet, model, retries=0)
        assert not outcome.ok
        assert outcome.message.startswith("device dev1") and "connection lost" in outcome.message
        assert listing(spool / "models", ".tflite") == []
    # the device's agent, asked directly, does not have the model: nothing can run it
    has = subprocess.run(
        [sys.executable, "-m", "device_agents", "has", model.sha256, "--spool", spool, "--json"],
        capture_output=True,
        text=True,
    )
    assert json.loads(has.stdout) == {"present": [], "missing": [model.sha256]}
    figures("link cut", injected=2, failed_cleanly=2, lost=0)


def test_a_slow_link_that_breaks_twice_still_delivers(ready_fleet, large_tflite, figures):
    fleet = ready_fleet(1)
    proxy = fleet.proxy("dev1")
    model = load_model(large_tflite)
    proxy.set_delay(0.002)  # every 16 KiB waits 2 ms each way: a slow, laggy link
    proxy.plan_cut(after_bytes=int(model.size_bytes * 0.3))
    proxy.plan_cut(after_bytes=int(model.size_bytes * 0.2))  # the resumed upload breaks again
    outcome = deploy_through(fleet, model)
    assert outcome.ok, outcome.message
    assert proxy.stats.cuts == 2 and outcome.value[0].retries == 2
    assert_clean_model(fleet["dev1"].spool, model)
    figures("link cut", injected=2, survived=2, lost=0)


@pytest.mark.faults
def test_a_black_hole_mid_upload_times_out_and_the_retry_completes(
    ready_fleet, large_tflite, figures
):
    """Bytes stop moving (no reset, no FIN): the SFTP timeout notices, the retry resumes."""
    fleet = ready_fleet(1)
    proxy = fleet.proxy("dev1")
    model = load_model(large_tflite)
    frozen: list[float] = []

    def freeze_once(_device: str, _label: str, done: int, total: int) -> None:
        if not frozen and done > total // 3:
            frozen.append(time.monotonic())
            proxy.freeze()

    start = time.monotonic()
    outcome = deploy([device_of(fleet)], [model], progress=freeze_once)["dev1"]
    assert frozen and outcome.ok, outcome.message
    assert outcome.value[0].retries >= 1
    assert time.monotonic() - start < 120
    assert_clean_model(fleet["dev1"].spool, model)
    figures("link drop", injected=1, survived=1, lost=0)


@pytest.mark.parametrize("daemon", [True, False], ids=["daemon", "serve-once"])
def test_sshd_restart_mid_bench_the_job_finishes_and_its_result_is_collected(
    ready_fleet, board_daemons, large_tflite, tmp_path, figures, daemon
):
    fleet = ready_fleet(1)
    device = fleet["dev1"]
    spool = device.spool
    if daemon:
        board_daemons(device)
    db = tmp_path / "r.db"
    proc = start_edgeprune(
        "bench", large_tflite, "--device", "dev1", "--runs", "2000", "--warmup", "0",
        "--db", db, "--inventory", fleet.inventory_path, "--json",
        out_dir=tmp_path / "bench",
    )  # fmt: skip
    try:
        (job,) = wait_for(
            lambda: listing(spool / "jobs" / "running", ".json"), 240, "the job to start"
        )
        killed = device.kill_connections()
        device.stop()
        time.sleep(0.5)
        device.start()
        assert killed >= 1
        run = finished(proc, tmp_path / "bench", timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert run.code == 0, run.err
    (row,) = run.json["rows"]
    assert row["status"] == "ok" and row["device"] == "dev1"
    with sqlite3.connect(db) as conn:
        stored_jobs = [r[0] for r in conn.execute("SELECT job_id FROM measurements")]
    assert stored_jobs == [job[: -len(".json")]]
    stored = Result.from_json((spool / "results" / "acked" / job).read_text())
    assert stored.status == "ok"
    # ran once: no re-run after the drop, and nothing left waiting on the board
    assert "rerun_after_interruption" not in {w.code for w in stored.warnings}
    assert listing(spool / "results", ".json") == []
    assert listing(spool / "jobs" / "queued") == listing(spool / "jobs" / "running") == []
    figures("sshd restart", injected=1, survived=1, lost=0)
