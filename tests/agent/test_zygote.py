"""The fork server (device_agents/zygote.py) with the real runtime: forked members measure,
every generation is a new process forked from the job's zygote, a member that crashes or
hangs is killed alone, a cancel leaves no process behind, and the subprocess fallback."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from device_agents import rounds, zygote
from device_agents.bench import (
    BenchInterrupted,
    GroupMember,
    _child_env,
    _start_child,
    benchmark_group,
)
from device_agents.integrity import sha256_file
from device_agents.protocol import BenchOptions
from device_agents.rounds import MemberRun, Watch, measure_in_rounds

from .conftest import bench_children, member_of, process_name, zygotes
from .test_rounds import _spec


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _watch(seconds: float = 60, stop=lambda: False) -> Watch:
    return Watch(time.monotonic() + seconds, seconds, lambda: None, stop, BenchInterrupted, 0.2)


def _wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_every_generation_is_forked_from_one_zygote(agent_models):
    """Members measure in forked children: a new pid per generation, each the zygote's
    child, in the member's own process group; the zygote has one thread (it forks safely)."""
    seen: dict[str, list[tuple[int, int, int]]] = {"A": [], "B": []}
    with zygote.ChildStarter("zf", "ai_edge_litert", _child_env()) as starter:
        watch = _watch()
        start = _start_child("zf", starter, watch)

        def recording(member):
            child = start(member)
            pid = child.proc.pid
            seen[member.member_id].append((pid, _parent(pid), os.getpgid(pid)))
            return child

        members = [MemberRun(name, _spec(agent_models.dense)) for name in "AB"]
        options = BenchOptions(runs=6, round_runs=1, rounds_per_process=2)
        measured = measure_in_rounds(members, options, watch, recording)
        assert starter.zygote is not None and starter.failure is None
        server = starter.zygote.proc.pid
        assert process_name(server) == "ep-zygote" and _threads(server) == 1
    for m in measured:
        assert m.status == "ok", m.error
        assert m.processes == [2, 2, 2] and m.process_start == "fork"
        assert m.import_ms is not None and m.import_ms > 1  # the zygote's import, reported
    for records in seen.values():
        assert len({pid for pid, _, _ in records}) == 3  # one fresh process per generation
        assert all(parent == server and group == pid for pid, parent, group in records)
    assert bench_children("zf") == [] and zygotes("zf") == []


def test_a_forked_member_that_crashes_or_hangs_is_killed_alone(agent_models, monkeypatch):
    """B dies from SIGSEGV, C stops answering (SIGSTOP): each becomes its own error, A is
    measured to the end in fresh forked processes."""
    monkeypatch.setattr(rounds, "HANG_FLOOR_S", 1.5)
    monkeypatch.setattr(rounds, "HANG_FACTOR", 1.0)
    pids: dict[str, list[int]] = {"A": [], "B": [], "C": []}
    with zygote.ChildStarter("zk", "ai_edge_litert", _child_env()) as starter:
        watch = _watch()
        start = _start_child("zk", starter, watch)

        def breaking(member):
            child = start(member)
            pids[member.member_id].append(child.proc.pid)
            if len(pids[member.member_id]) == 2 and member.member_id == "B":
                os.kill(child.proc.pid, signal.SIGSEGV)
            if len(pids[member.member_id]) == 2 and member.member_id == "C":
                os.kill(child.proc.pid, signal.SIGSTOP)
            return child

        members = [MemberRun(name, _spec(agent_models.dense)) for name in "ABC"]
        options = BenchOptions(runs=6, round_runs=1, rounds_per_process=2)
        a, b, c = measure_in_rounds(members, options, watch, breaking)
    assert a.status == "ok" and a.processes == [2, 2, 2] and len(a.latencies_ms) == 6, a.error
    assert b.status == "error" and b.error_kind == "crashed" and "SIGSEGV" in b.error, b.error
    assert c.status == "error" and c.error_kind == "timeout", c.error
    assert len(pids["A"]) == 3 and len(pids["B"]) == len(pids["C"]) == 2
    for pid in pids["C"]:
        assert not os.path.exists(f"/proc/{pid}") or process_name(pid) == ""
    assert bench_children("zk") == [] and zygotes("zk") == []


def test_cancel_kills_the_forked_children_and_the_zygote(agent_models):
    paths = [agent_models.dense, agent_models.int8]
    members = [GroupMember(f"zc.{i}", str(p), sha256_file(str(p))) for i, p in enumerate(paths, 1)]
    stop = threading.Event()
    outcome: dict[str, BaseException] = {}

    def work():
        try:
            benchmark_group(
                "zc",
                members,
                BenchOptions(
                    runs=None,
                    min_seconds=30.0,
                    round_runs=3,
                    timeout_s=60,
                    rounds_per_process=100_000,
                ),
                should_stop=stop.is_set,
            )
        except BaseException as exc:  # what the daemon would see
            outcome["raised"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    _wait_for(lambda: len(bench_children("zc")) == 2, 30, "both members to start")
    children = bench_children("zc")
    assert {member_of(pid) for pid in children} == {"zc.1", "zc.2"}
    (server,) = zygotes("zc")
    assert all(_parent(pid) == server for pid in children)
    stop.set()
    thread.join(10)
    assert isinstance(outcome.get("raised"), BenchInterrupted)
    _wait_for(lambda: not bench_children("zc") and not zygotes("zc"), 5, "no process left")


def test_a_zygote_that_cannot_start_falls_back_to_subprocess(agent_models):
    """The zygote cannot import its runtime: the children are spawned as before, measure,
    and the result says how (process_start) and why (the starter's failure)."""
    with zygote.ChildStarter("zb", "no_such_runtime", _child_env()) as starter:
        watch = _watch()
        members = [MemberRun(name, _spec(agent_models.dense)) for name in "AB"]
        options = BenchOptions(runs=4, round_runs=1, rounds_per_process=2)
        measured = measure_in_rounds(members, options, watch, _start_child("zb", starter, watch))
    for m in measured:
        assert m.status == "ok" and m.processes == [2, 2] and m.process_start == "spawn"
    assert starter.failure is not None and "cannot import no_such_runtime" in starter.failure
    assert bench_children("zb") == [] and zygotes("zb") == []


@pytest.mark.parametrize("setting", ["0", "1"])
def test_the_fork_switch(agent_models, monkeypatch, setting):
    """EDGEPRUNE_AGENT_FORK=0 spawns every child (no zygote, no warning): the old cost, for
    side-by-side benchmarks; otherwise a group job forks them."""
    monkeypatch.setenv(zygote.FORK_ENV, setting)
    paths = [agent_models.dense, agent_models.int8]
    members = [GroupMember(f"zs.{i}", str(p), sha256_file(str(p))) for i, p in enumerate(paths, 1)]
    result = benchmark_group("zs", members, BenchOptions(runs=4, round_runs=2))
    for member in result.members:
        assert member.status == "ok", member.error
        (m,) = member.measurements
        assert m.process_start == ("spawn" if setting == "0" else "fork")
        assert "fork_server_unavailable" not in {w.code for w in member.warnings}


@pytest.mark.parametrize("setting", ["0", "1"])
def test_the_zygote_freezes_its_heap_before_forking(agent_models, monkeypatch, setting):
    """gc.freeze in the zygote: a forked child's collection before its timed runs skips the
    objects of numpy and the runtime (and so copies none of their pages); the members
    measure alike either way. EDGEPRUNE_ZYGOTE_FREEZE=0 is the comparison."""
    monkeypatch.setenv(zygote.FREEZE_ENV, setting)
    with zygote.ChildStarter("zz", "ai_edge_litert", _child_env()) as starter:
        watch = _watch()
        members = [MemberRun(name, _spec(agent_models.dense)) for name in "AB"]
        options = BenchOptions(runs=4, round_runs=1, rounds_per_process=2)
        measured = measure_in_rounds(members, options, watch, _start_child("zz", starter, watch))
        assert starter.zygote is not None and starter.zygote.ready
        frozen = starter.zygote.frozen
    for m in measured:
        assert m.status == "ok" and m.process_start == "fork", m.error
    if setting == "0":
        assert frozen == 0
    else:
        assert frozen is not None and frozen > 10_000  # numpy, the runtime, the agent


def test_kill9_of_the_agent_leaves_neither_zygote_nor_children(agent_models, tmp_path):
    """PR_SET_PDEATHSIG twice: the agent dies -> its zygote dies -> the forked members die."""
    import subprocess
    import sys

    from .conftest import REPO, agent_env

    argv = [sys.executable, "-m", "device_agents", "run", "--id=zk9", "--min-seconds=60"]
    argv += ["--spool", str(tmp_path / "spool"), "--", str(agent_models.dense)]
    proc = subprocess.Popen(
        [*argv, str(agent_models.int8)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=agent_env(),
        cwd=str(REPO),
    )
    try:
        _wait_for(lambda: len(bench_children("zk9")) == 2, 30, "both members to start")
        (server,) = zygotes("zk9")
        assert all(_parent(pid) == server for pid in bench_children("zk9"))
        proc.kill()
        proc.wait()
        _wait_for(lambda: not bench_children("zk9") and not zygotes("zk9"), 10, "none left")
    finally:
        proc.kill()
        proc.wait()
