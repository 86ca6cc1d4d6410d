"""`open_executor("tcp://…")` against a real local Dask cluster started here (2 worker
processes, one module-wide cluster), measuring a tiny model on the real `local` device."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import compute_tasks

from edgeprune.compute import Span, TaskLost, open_executor, overlapping
from edgeprune.errors import UserError

distributed = pytest.importorskip("distributed")


@pytest.fixture
def executor(cluster):
    with open_executor(cluster.scheduler_address) as connected:
        connected.client.wait_for_workers(2, timeout=30)
        yield connected


def test_slots_are_one_lock_per_board_across_the_workers(executor) -> None:
    items = [{"device": "pi4", "hold": 0.2} for _ in range(4)] + [{"device": "jetson", "hold": 0.4}]
    done = executor.map(compute_tasks.hold_slot, items)
    assert len({d["pid"] for d in done}) == 2
    spans = [Span(i["device"], d["start"], d["end"]) for i, d in zip(items, done, strict=True)]
    assert overlapping(spans) == []
    assert overlapping([Span("any", d["began"], d["done"]) for d in done])


@pytest.mark.slow  # each measurement on `local` is ~8 s of agent round trips on a busy host
def test_proposals_run_at_once_but_never_measure_on_one_board_together(
    executor, tiny_tflite: Path, tmp_path: Path
) -> None:
    item = {"model": str(tiny_tflite), "data_home": os.environ["XDG_DATA_HOME"]}
    items = [
        {**item, "host_s": 2.0, "runs": 30} for _ in range(2)
    ]  # 2 s: room for start-up jitter on a busy host
    done = executor.map(compute_tasks.measure_on_device, items, labels=["p0", "p1"])

    assert len({d["pid"] for d in done}) == 2 and os.getpid() not in {d["pid"] for d in done}
    assert all(d["host_calls"] > 0 for d in done)
    host = [Span("host", d["began"], d["host_end"], str(i)) for i, d in enumerate(done)]
    assert overlapping(host), "the proposals' host work did not run concurrently"
    measured = [
        Span(d["device"], d["started_at"], d["finished_at"], str(i)) for i, d in enumerate(done)
    ]
    assert all(s.end > s.start > 0 for s in measured)
    assert overlapping(measured) == [], "two measurements shared the board"


def test_a_task_error_comes_back_as_raised_and_the_rest_are_cancelled(executor) -> None:
    items = [{"n": 0, "sleep": 0.2}, {"n": 1, "fail": True}] + [
        {"n": n, "sleep": 2} for n in (2, 3, 4)
    ]
    began = time.monotonic()
    with pytest.raises(ValueError, match="item 1 is bad"):
        executor.map(compute_tasks.fail_on, items)
    assert time.monotonic() - began < 4  # did not wait for every sleeping task
    assert executor.map(compute_tasks.square, [5, 6]) == [25, 36]


def test_a_worker_that_dies_mid_task_names_the_variant(executor) -> None:
    items = [{"n": 0}, {"n": 1, "die": True}]
    with pytest.raises(TaskLost, match=r"^v-dies: the worker running it died"):
        executor.map(compute_tasks.fail_on, items, labels=["v-ok", "v-dies"])
    executor.client.wait_for_workers(2, timeout=30)  # the nanny restarts it
    assert executor.map(compute_tasks.square, [2]) == [4]


def test_the_workdir_is_checked_from_every_worker(executor, tmp_path: Path) -> None:
    executor.require_shared_dir(tmp_path)  # same host: every worker sees it
    assert list(tmp_path.iterdir()) == []  # the marker is gone


def test_a_worker_that_cannot_see_the_workdir_is_refused(tmp_path: Path) -> None:
    """A worker in its own mount namespace, with an empty tmpfs over the workdir."""
    if (
        shutil.which("unshare") is None
        or subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False).returncode
    ):
        pytest.skip("needs unshare -m (mount namespaces)")
    workdir = tmp_path / "work"
    workdir.mkdir()
    with distributed.LocalCluster(
        n_workers=0, processes=False, protocol="tcp", dashboard_address=":0"
    ) as alone:
        mount = f"mount -t tmpfs none {workdir} && exec {sys.executable} -m distributed.cli.dask_worker --nthreads 1 --no-nanny {alone.scheduler_address}"
        worker = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", mount],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with open_executor(alone.scheduler_address, connect_timeout=30) as blind:
                with pytest.raises(
                    UserError, match=r"1 worker\(s\) of cluster .* cannot see the workdir"
                ) as e:
                    blind.require_shared_dir(workdir)
                assert e.value.params == ("cluster",)
        finally:
            worker.terminate()
            worker.wait(timeout=10)


def test_an_unreachable_scheduler_fails_before_any_work() -> None:
    began = time.monotonic()
    with pytest.raises(
        UserError, match=r"cannot reach a dask scheduler at cluster tcp://127\.0\.0\.1:9 "
    ) as e:
        open_executor("tcp://127.0.0.1:9", connect_timeout=1)
    assert e.value.params == ("cluster",) and time.monotonic() - began < 10


def test_a_scheduler_without_workers_says_how_to_start_one() -> None:
    with (
        distributed.LocalCluster(
            n_workers=0, processes=False, protocol="tcp", dashboard_address=":0"
        ) as empty,
        pytest.raises(UserError, match="has no workers; start some with `dask worker"),
    ):
        open_executor(empty.scheduler_address, connect_timeout=1)
