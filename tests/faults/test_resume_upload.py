"""An upload cut off in one command resumes in the next (issue 16: resumable uploads).

The cut test uses the issue's 50 MB (random bytes behind a TFLite identifier: deploy checks
that and the sha256, never the content; ~8 s); the Ctrl-C and corrupt-prefix tests use the
~10 MB `large_tflite` fixture. Bytes on the link are the proxy's count (support.tcp_proxy),
so they include SSH's framing, not just the file's bytes.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from support.sshd import sshd_available

from device_agents.integrity import sha256_file
from device_agents.spool import _open_files
from edgeprune.fleet import deploy, load_model

from .harness import edgeprune, finished, listing, start_edgeprune, wait_for
from .test_link_faults import assert_clean_model, device_of, forget_models

pytestmark = pytest.mark.skipif(not sshd_available(), reason="OpenSSH server not installed")


def parts(spool: Path) -> list[Path]:
    return sorted((spool / "incoming").glob("*.part"))


def let_go(part: Path) -> None:
    """Wait until the board's sftp-server of the dead connection has closed the part."""

    def closed() -> bool:
        info = os.stat(part)
        return (info.st_dev, info.st_ino) not in _open_files()

    wait_for(closed, 30, "the old connection's sftp-server to close the part")


@pytest.fixture
def model_50mb(tmp_path) -> Path:
    """50 MB with a TFLite identifier: deploy checks that and the hash, never the content."""
    path = tmp_path / "big.tflite"
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + os.urandom(50_000_000 - 8))
    return path


def test_a_cut_at_half_of_50mb_is_resumed_by_the_next_deploy(ready_fleet, model_50mb, figures):
    fleet = ready_fleet(1)
    spool = fleet["dev1"].spool
    proxy = fleet.proxy("dev1")
    model = load_model(model_50mb)
    size = model.size_bytes

    proxy.plan_cut(after_bytes=size // 2)
    first = deploy([device_of(fleet, retries=0)], [model])["dev1"]
    assert not first.ok and "connection lost" in first.message
    assert listing(spool / "models", ".tflite") == []  # nothing usable
    (part,) = parts(spool)
    assert 0.4 * size < part.stat().st_size < 0.5 * size  # less what was in flight
    let_go(part)

    before = proxy.stats.bytes_up
    second = deploy([device_of(fleet, retries=0)], [model])["dev1"]
    on_link = proxy.stats.bytes_up - before
    assert second.ok, second.message
    (sent,) = second.value
    assert sent.resumed_from > 0.4 * size and sent.bytes_sent == size - sent.resumed_from
    assert on_link < 0.6 * size, f"{on_link} bytes went up for a {size}-byte file"
    assert_clean_model(spool, model)
    figures("resume", injected=1, survived=1, resent_pct=round(100 * on_link / size))


def test_a_part_with_a_wrong_prefix_is_sent_again_from_zero(ready_fleet, large_tflite, figures):
    fleet = ready_fleet(1)
    spool = fleet["dev1"].spool
    model = load_model(large_tflite)
    data = bytearray(large_tflite.read_bytes()[: model.size_bytes // 2])
    data[1000] ^= 0xFF  # one flipped byte: the length fits, the content does not
    (spool / "incoming").mkdir(parents=True, exist_ok=True)
    stale = spool / "incoming" / f"{model.sha256}.0badbad0.part"
    stale.write_bytes(bytes(data))
    old = time.time() - 60  # idle, as an interrupted command's part is
    os.utime(stale, (old, old))

    outcome = deploy([device_of(fleet)], [model])["dev1"]
    assert outcome.ok, outcome.message
    (sent,) = outcome.value
    assert sent.resumed_from == 0 and sent.bytes_sent == model.size_bytes
    assert_clean_model(spool, model)
    figures("resume", injected=1, survived=1, corrupt_prefix_resent=1)


def test_ctrl_c_during_deploy_keeps_the_part_unused_and_the_next_deploy_resumes(
    ready_fleet, large_tflite, tmp_path, figures
):
    fleet = ready_fleet(1)
    spool = fleet["dev1"].spool
    proxy = fleet.proxy("dev1")
    proxy.set_delay(0.002)  # ~8 MB/s: the upload lasts long enough to interrupt it
    model = load_model(large_tflite)
    size = model.size_bytes
    inv = fleet.inventory_path

    proc = start_edgeprune("deploy", large_tflite, "--device", "dev1", "--inventory", inv,
                           out_dir=tmp_path / "first")  # fmt: skip
    try:
        wait_for(
            lambda: any(p.stat().st_size > size // 4 for p in parts(spool)),
            120,
            "a quarter of the upload",
            every=0.01,
        )
        proc.send_signal(signal.SIGINT)
        run = finished(proc, tmp_path / "first", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert run.code == 130, run.err
    assert "Traceback" not in run.err and "interrupted" in run.err
    assert listing(spool / "models", ".tflite") == []  # the part is never used as a model
    (part,) = parts(spool)
    kept = part.stat().st_size
    assert 0 < kept < size
    let_go(part)

    proxy.set_delay(0)
    again = edgeprune("deploy", large_tflite, "--device", "dev1", "--inventory", inv, "--json")
    assert again.code == 0, again.err
    (sent,) = again.json["devices"][0]["files"]
    assert sent["status"] == "sent" and sent["resumed_from"] == kept
    assert sent["bytes_sent"] == size - kept
    assert sha256_file(spool / "models" / f"{model.sha256}.tflite") == model.sha256
    assert parts(spool) == []
    forget_models(spool)
    figures("ctrl-c deploy", injected=1, survived=1, lost=0)
