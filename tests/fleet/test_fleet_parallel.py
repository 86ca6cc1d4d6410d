"""`--parallel` (and its old spelling), the live per-device lines and the closing summary."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from rich.console import Console

from edgeprune.cli.present_live import FleetLive
from edgeprune.fleet.fanout import DEFAULT_PARALLEL_CAP, fan_out, workers
from edgeprune.fleet.inventory import LOCAL_DEVICE, load_inventory

REPO = Path(__file__).resolve().parents[2]
NOTE = "note: --concurrency is deprecated; use --parallel"


def dead_inventory(tmp_path: Path) -> Path:
    """An inventory with one board nobody listens for (port 1: refused at once)."""
    path = tmp_path / "devices.yaml"
    path.write_text(
        "devices:\n  - {name: dead, host: 127.0.0.1, port: 1, retries: 0, connect_timeout: 2}\n"
    )
    return path


def edgeprune(*args: object) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process, stderr not a terminal, 80 columns."""
    env = dict(os.environ, COLUMNS="80", PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-c", "from edgeprune.cli.app import main; main()", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=str(REPO),
    )


def test_workers_default_to_every_device_up_to_the_cap():
    assert workers(None, 5) == 5
    assert workers(None, 500) == DEFAULT_PARALLEL_CAP
    assert workers(2, 5) == 2 and workers(8, 0) == 1
    seen: set[str] = set()
    lock = threading.Lock()
    barrier = threading.Barrier(3, timeout=10)  # all three must run at once to pass

    def work(device) -> str:
        with lock:
            seen.add(threading.current_thread().name)
        barrier.wait()
        return device.name

    devices = [load_inventory(None).devices[LOCAL_DEVICE]] * 3
    group = fan_out(devices, work)  # default: all three at once
    assert [o.value for o in group] == [LOCAL_DEVICE] * 3 and len(seen) == 3


def test_deploy_parallel_summary_at_80_columns(tiny_tflite, tmp_path):
    inventory = dead_inventory(tmp_path)
    run = edgeprune("deploy", tiny_tflite, "--device", "local,dead", "--inventory", inventory,
                    "--parallel", "2")  # fmt: skip
    assert run.returncode == 3, run.stderr
    assert NOTE not in run.stderr and "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    assert f"{LOCAL_DEVICE}: uploaded" in run.stderr  # a plain line: stderr is no terminal
    title = next(i for i, line in enumerate(lines) if "deploy: 1 of 2 device(s) ok" in line)
    rows = "\n".join(lines[title:])
    local_row = next(line for line in lines[title:] if line.startswith(f"│ {LOCAL_DEVICE} "))
    assert " ok " in local_row
    assert "│ dead " in rows and "failed: " in rows and "refused" in rows.replace("\n", " ")
    assert lines[-1] == "error: deploy failed on 1 of 2 device(s): dead"


def test_concurrency_still_works_with_a_note_and_json_prints_no_lines(tiny_tflite, tmp_path):
    run = edgeprune("deploy", tiny_tflite, "--device", LOCAL_DEVICE, "--concurrency", "2", "--json")
    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines() == [NOTE]  # no live lines, no summary with --json
    (device,) = json.loads(run.stdout)["devices"]
    assert device["ok"] and device["files"][0]["status"] in ("sent", "present")
    both = edgeprune("deploy", tiny_tflite, "--parallel", "2", "--concurrency", "2")
    assert both.returncode == 2
    assert both.stderr.splitlines()[-1] == (
        "error: give --parallel, not also its old spelling --concurrency"
    )


def test_the_live_block_shows_each_devices_stage_bytes_and_job_progress():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=80, color_system=None)
    with FleetLive(["pi4", "jetson"], enabled=True, console=console) as live:
        assert live.live_mode
        live.upload("pi4", "m.tflite", 5_000_000, 10_000_000)
        live.step("jetson", "measuring", 120, 500)
    text = out.getvalue()
    assert "pi4" in text and "uploading m.tflite" in text and "5.0 MB/10.0 MB" in text
    assert "measuring 120/500" in text
