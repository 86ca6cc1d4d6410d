"""The board's disk fills up (a size-limited tmpfs spool), before or during the work.

tests/fleet covers a model bigger than the free space (refused before sending). Here the
disk fills *while* the model is on its way, and a full disk meets `bench`; each time the
message names the device and the free space, and nothing partial stays on the board.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import pytest
from support.sshd import DeviceSpec, sshd_available

from device_agents.integrity import sha256_file

from .harness import edgeprune, listing, wait_for

pytestmark = [
    pytest.mark.skipif(not sshd_available(), reason="OpenSSH server not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="a size-limited tmpfs spool needs root"),
]


def fill(folder: Path, leave: int = 0) -> Path:
    """Write a filler file until only `leave` bytes are free on folder's filesystem."""
    filler = folder / "filler.bin"
    stats = os.statvfs(folder)
    room = stats.f_bavail * stats.f_frsize - leave
    with open(filler, "ab") as handle, contextlib.suppress(OSError):
        while room > 0:
            chunk = min(room, 1 << 20)
            handle.write(b"\0" * chunk)
            room -= chunk
    return filler


def one_error_line(err: str, device: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith(f"error: device {device}")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_disk_fills_during_the_upload(ready_fleet, large_tflite, figures):
    fleet = ready_fleet(
        devices=[DeviceSpec("small-disk", tags=["sshd"], spool_size_bytes=16 * 1024 * 1024)]
    )
    spool = fleet["small-disk"].spool
    incoming = spool / "incoming"
    filled: list[Path] = []

    def fill_when_halfway() -> None:
        def part_size() -> int:
            sizes = []
            for part in incoming.glob("*.part") if incoming.is_dir() else []:
                with contextlib.suppress(OSError):
                    sizes.append(part.stat().st_size)
            return sum(sizes)

        wait_for(lambda: part_size() > 3_000_000, 120, "the upload to get going", every=0.01)
        filled.append(fill(spool))

    fleet.proxy("small-disk").set_delay(0.005)  # a slower link: time to fill the disk midway
    filler = threading.Thread(target=fill_when_halfway, daemon=True)
    filler.start()
    inv = fleet.inventory_path
    run = edgeprune("deploy", large_tflite, "--device", "small-disk", "--inventory", inv)
    filler.join(60)
    assert filled, "the disk was never filled: the test injected nothing"
    assert run.code == 3
    line = one_error_line(run.err, "small-disk")
    assert f"disk full while uploading {large_tflite.name}" in line
    assert "MB free in" in line and "MB needed" in line
    assert listing(incoming) == []  # the part file was removed
    assert listing(spool / "models", ".tflite") == []
    # room again: the same deploy goes through, verified
    filled[0].unlink()
    run = edgeprune("deploy", large_tflite, "--device", "small-disk", "--inventory", inv)
    assert run.code == 0, run.err
    (model,) = (spool / "models").glob("*.tflite")
    assert sha256_file(model) == sha256_file(large_tflite)
    figures("disk full", injected=1, survived=1, lost=0)


def test_a_full_board_fails_alone_in_bench_with_its_free_space(
    ready_fleet, tiny_tflite, tmp_path, figures
):
    fleet = ready_fleet(
        devices=[
            DeviceSpec("full-disk", tags=["sshd"], spool_size_bytes=2 * 1024 * 1024),
            DeviceSpec("roomy", tags=["sshd"]),
        ]
    )
    inv = fleet.inventory_path
    run = edgeprune("deploy", tiny_tflite, "--tag", "sshd", "--inventory", inv)
    assert run.code == 0, run.err
    spool = fleet["full-disk"].spool
    fill(spool)
    before = {sub: listing(spool / sub) for sub in ("jobs/queued", "models", "incoming")}
    db = tmp_path / "r.db"
    run = edgeprune(
        "bench", tiny_tflite, "--tag", "sshd", "--runs", "2", "--db", db, "--inventory", inv,
        "--json",
    )  # fmt: skip
    assert run.code == 3
    line = one_error_line(run.err, "full-disk")
    assert "disk is full (0.0 MB free in" in line and str(fleet["full-disk"].spool) in line, line
    rows = run.json["rows"]
    assert [(r["device"], r["status"]) for r in rows] == [("roomy", "ok")]
    after = {sub: listing(spool / sub) for sub in ("jobs/queued", "models", "incoming")}
    assert after == before  # nothing half-written on the full board
    figures("disk full", injected=1, survived=1, lost=0)
