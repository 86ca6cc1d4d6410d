"""One board of eight hangs: TCP connects, SSH never answers (or stops answering mid-way).

The other seven finish; the hung one times out with one line that says what happened; the
command's exit code says a device failed.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time

import pytest
from support.sshd import sshd_available
from support.tcp_proxy import hung_listener

from .harness import edgeprune, listing, start_edgeprune, wait_for

pytestmark = pytest.mark.skipif(not sshd_available(), reason="OpenSSH server not installed")

CONNECT_TIMEOUT = 3
RETRIES = 1


def test_one_hung_device_of_eight_times_out_and_the_others_finish(
    ready_fleet, tiny_tflite, tmp_path, figures
):
    fleet = ready_fleet(8, retries=RETRIES, connect_timeout=CONNECT_TIMEOUT)
    fleet.proxy("dev8").hang_new_connections()  # accepts TCP, never says a word
    inv = fleet.inventory_path
    db = tmp_path / "r.db"

    start = time.monotonic()
    run = edgeprune(
        "bench", tiny_tflite, "--tag", "sshd", "--runs", "2", "--warmup", "0",
        "--db", db, "--inventory", inv, "--json",
    )  # fmt: skip
    elapsed = time.monotonic() - start
    assert run.code == 3, run.err
    assert "Traceback" not in run.err
    devices = {d["device"]: d for d in run.json["devices"]}
    assert [name for name, d in devices.items() if not d["ok"]] == ["dev8"]
    error = devices["dev8"]["error"]
    assert error.startswith("device dev8 (") and "no SSH answer within 3 s" in error, error
    lines = [line for line in run.err.splitlines() if line.startswith("error:")]
    assert lines[0] == f"error: {error}"
    assert lines[-1] == "error: bench failed on 1 of 8 device(s): dev8"
    rows = run.json["rows"]
    assert sorted(r["device"] for r in rows) == [f"dev{i}" for i in range(1, 8)]
    assert all(r["status"] == "ok" for r in rows)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM measurements").fetchone()[0] == 7
    # the hung board costs its timeouts (tries x connect timeout + backoff), not more
    assert elapsed < 120
    assert listing(fleet["dev8"].spool / "jobs" / "queued") == []
    figures("hung device", injected=1, survived=7, failed_clearly=1, lost=0)


def test_a_bare_listening_socket_fails_a_deploy_alone(ready_fleet, tiny_tflite, figures):
    """The plainest hang: a socket nobody serves (the kernel accepts, nothing ever reads)."""
    fleet = ready_fleet(2, retries=RETRIES, connect_timeout=CONNECT_TIMEOUT)
    sock, port = hung_listener()
    try:
        hung = {"name": "silent", "host": "127.0.0.1", "port": port, "tags": ["sshd"]}
        hung |= {"retries": RETRIES, "connect_timeout": CONNECT_TIMEOUT}
        fleet.write_inventory(extra_devices=[hung])
        run = edgeprune(
            "deploy", tiny_tflite, "--tag", "sshd", "--inventory", fleet.inventory_path, "--json"
        )
    finally:
        sock.close()
    assert run.code == 3, run.err
    devices = {d["device"]: d for d in run.json["devices"]}
    assert devices["dev1"]["ok"] and devices["dev2"]["ok"]
    assert "no SSH answer within 3 s" in devices["silent"]["error"]
    assert run.err.splitlines()[-1] == "error: deploy failed on 1 of 3 device(s): silent"
    figures("hung device", injected=1, survived=2, failed_clearly=1, lost=0)


def test_a_fast_devices_results_are_stored_while_another_device_still_hangs(
    ready_fleet, tiny_tflite, tmp_path, figures
):
    """Stored as they arrive: dev1's row is in the DB while the command still waits on dev2."""
    fleet = ready_fleet(2, retries=0, connect_timeout=120)
    fleet.proxy("dev2").hang_new_connections()
    db = tmp_path / "r.db"
    proc = start_edgeprune(
        "bench", tiny_tflite, "--tag", "sshd", "--runs", "2", "--warmup", "0",
        "--db", db, "--inventory", fleet.inventory_path, "--json",
        out_dir=tmp_path / "bench",
    )  # fmt: skip

    def stored_devices() -> list[str]:
        if not db.exists():
            return []
        with contextlib.closing(sqlite3.connect(db)) as conn:
            try:
                rows = conn.execute("SELECT DISTINCT device FROM measurements").fetchall()
            except sqlite3.OperationalError:  # the schema is not there yet
                return []
        return [row[0] for row in rows]

    try:
        assert wait_for(stored_devices, 60, "dev1's result in the store") == ["dev1"]
        assert proc.poll() is None, "the command ended: dev2 was not hanging"
    finally:
        proc.kill()
        proc.wait(30)
    figures("hung device", injected=1, survived=1, lost=0)
