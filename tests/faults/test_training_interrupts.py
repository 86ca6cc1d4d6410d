"""Ctrl-C of the commands that train or report (qat, quant-report) is a normal event.

Each test runs the real `edgeprune` console script in its own process group, as a shell
job is, sends SIGINT to the group once the command is busy (an epoch line on stderr, or a
benchmark child on `local`), and checks what a user would see: exit 130, one `error:` line
and no traceback, no output file (or temp file) left behind, no benchmark process left.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from .harness import wait_for
from .test_interrupts import bench_children, result_on_board, running_job, start

pytestmark = pytest.mark.faults


def _interrupt(proc: subprocess.Popen[bytes], out_dir: Path) -> tuple[int, str]:
    os.killpg(proc.pid, signal.SIGINT)
    code = proc.wait(120)
    return code, (out_dir / "err").read_text()


def test_ctrl_c_during_qat_training_exits_130_and_writes_nothing(demo_model_path, tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    proc = start(
        "qat",
        demo_model_path,
        "-o",
        target / "qat.keras",
        "--data",
        "digits",
        "--epochs",
        "50",
        out_dir=tmp_path / "log",
        group=True,
    )
    try:
        wait_for(
            lambda: "epoch 1/50" in (tmp_path / "log" / "err").read_text(),
            timeout=300,
            what="qat's first epoch line",
        )
        code, err = _interrupt(proc, tmp_path / "log")
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 130, err
    assert err.rstrip().splitlines()[-1] == "error: interrupted", err
    assert "Traceback" not in err, err
    assert list(target.iterdir()) == [], "an interrupted qat leaves no file, partial or final"


def test_ctrl_c_during_quant_reports_bench_cancels_the_job(demo_model_path, tmp_path):
    work = tmp_path / "work"
    proc = start(
        "quant-report",
        demo_model_path,
        "--data",
        "digits",
        "--runs",
        "1000000",
        "--work-dir",
        work,
        "--db",
        tmp_path / "results.sqlite",
        out_dir=tmp_path / "log",
        group=True,
    )
    spool = Path(os.environ["XDG_DATA_HOME"]) / "edgeprune" / "local-spool"
    try:
        job_id = wait_for(lambda: running_job(spool), 300, "quant-report's bench on local")
        code, err = _interrupt(proc, tmp_path / "log")
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 130, err
    assert f"local: cancelled job {job_id} (models " in err, err
    assert "error: interrupted" not in err, "the cancelled job's line says it already"
    assert "Traceback" not in err, err
    assert result_on_board(spool, job_id).status == "cancelled"
    wait_for(lambda: not bench_children(), timeout=30, what="the bench child to be gone")
