"""`open_executor()` without a cluster: a spawn process pool on this host, file-lock slots."""

from __future__ import annotations

import sys

import pytest
from support import compute_tasks
from support.signals import default_sigint

from edgeprune.compute import Span, TaskLost, board_slot, open_executor, overlapping
from edgeprune.compute.engine import Engine, call_in_engine
from edgeprune.compute.executor import check_address
from edgeprune.errors import UserError


@pytest.fixture(scope="module")
def pool():
    with open_executor(workers=2) as executor:
        yield executor


def test_map_keeps_the_order_of_the_items(pool) -> None:
    assert pool.map(compute_tasks.square, list(range(7))) == [x * x for x in range(7)]
    assert pool.map(compute_tasks.square, []) == []


def test_the_first_error_comes_back_as_it_was_raised(pool) -> None:
    items = [{"n": 0, "sleep": 0.3}, {"n": 1, "fail": True}, {"n": 2, "sleep": 0.3}]
    with pytest.raises(ValueError, match="item 1 is bad"):
        pool.map(compute_tasks.fail_on, items)
    assert pool.map(compute_tasks.square, [3]) == [9]  # the pool still works


def test_slots_of_one_board_never_overlap_while_tasks_run_at_once(pool, tmp_path) -> None:
    items = [{"device": "pi4", "hold": 0.25} for _ in range(4)]
    items += [{"device": "jetson", "hold": 0.25}]
    done = pool.map(compute_tasks.hold_slot, items)
    assert len({d["pid"] for d in done}) == 2  # both workers ran tasks
    spans = [Span(i["device"], d["start"], d["end"]) for i, d in zip(items, done, strict=True)]
    assert overlapping(spans) == []
    tasks = [Span("host", d["began"], d["done"]) for d in done]
    assert overlapping(tasks)  # tasks did run at the same time


def test_without_the_slot_the_checker_sees_the_overlap() -> None:
    spans = [Span("pi4", 0.0, 1.0, "a"), Span("pi4", 0.5, 1.5, "b"), Span("pi4", 1.5, 2.0, "c")]
    spans += [Span("jetson", 0.2, 0.8, "d")]
    assert [(x.label, y.label) for x, y in overlapping(spans)] == [("a", "b")]


def test_the_slot_excludes_a_second_holder_in_this_process(tmp_path) -> None:
    import threading
    import time

    engine = Engine("local", str(tmp_path))
    spans: list[Span] = []

    def hold(item: str) -> None:
        with board_slot("pi4"):
            start = time.time()
            time.sleep(0.1)
            spans.append(Span("pi4", start, time.time(), item))

    threads = [
        threading.Thread(target=call_in_engine, args=(engine, hold, str(n))) for n in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(spans) == 3 and overlapping(spans) == []
    assert len(list(tmp_path.glob("pi4-*.lock"))) == 1


def test_a_worker_that_dies_names_its_task(tmp_path) -> None:
    with open_executor(workers=1) as executor:
        items = [{"n": 0}, {"n": 1, "die": True}]
        with pytest.raises(TaskLost, match=r"worker process died .* running variant-b"):
            executor.map(compute_tasks.fail_on, items, labels=["variant-a", "variant-b"])
        assert executor.map(compute_tasks.square, [4]) == [16]  # a fresh pool after the loss


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1:8786", "http://h:1", "tcp://h", "tcp://h:0", "tcp://h:99999", "tcp://a b:1"],
)
def test_a_malformed_address_names_cluster(address: str) -> None:
    with pytest.raises(UserError, match="is not a scheduler address; give tcp://HOST:PORT") as e:
        open_executor(address)
    assert e.value.params == ("cluster",)
    assert check_address("tcp://10.0.0.5:8786") == "tcp://10.0.0.5:8786"


def test_workers_must_be_positive() -> None:
    with pytest.raises(UserError, match="workers must be at least 1"):
        open_executor(workers=0)


def test_without_dask_installed_the_error_says_which_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` fails
    with pytest.raises(UserError, match=r"install edgeprune\[cluster\]") as e:
        open_executor("tcp://127.0.0.1:8786")
    assert "\n" not in str(e.value)


INTERRUPTED_MAP = """
import sys
sys.path.insert(0, {tests!r})
from support import compute_tasks
from edgeprune.compute import open_executor

executor = open_executor(workers=2)
pids = executor.map(compute_tasks.worker_pid, [0, 1])
print(*pids, flush=True)
try:
    executor.map(compute_tasks.fail_on, [{{"n": n, "sleep": 60}} for n in range(4)])
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


def test_ctrl_c_stops_the_workers_and_reaches_the_caller(tmp_path) -> None:
    import os
    import signal
    import subprocess
    import time
    from pathlib import Path

    tests = str(Path(__file__).resolve().parents[1])
    child = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_MAP.format(tests=tests)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    assert child.stdout is not None
    pids = [int(p) for p in child.stdout.readline().split()]
    assert len(set(pids)) == 2, child.stderr.read() if child.stderr else ""
    time.sleep(0.5)  # the sleeping tasks are running
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 130 and out.strip() == "interrupted", err
    assert "Traceback" not in err
    for pid in pids:  # both workers are gone, not left sleeping
        deadline = time.monotonic() + 10
        while _alive(pid):
            assert time.monotonic() < deadline, f"worker {pid} still runs"
            time.sleep(0.1)
    assert os.getpid() not in pids


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by init) counts as gone
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
