"""Group jobs and precision with the real runtime: alternating rounds, one child per member,
a member that crashes or is missing leaves the others measured."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import ClassVar

import pytest

from device_agents.bench import GroupMember, _child_env, benchmark_group
from device_agents.integrity import sha256_file
from device_agents.protocol import BenchOptions, Result
from device_agents.rounds import MemberRun, RoundsChild, Watch, child_argv, measure_in_rounds

from .conftest import bench_children, member_of, run_agent


def member_children(job_id: str, member_id: str) -> list[int]:
    """Pids of the live rounds children of one member of a group job."""
    return [pid for pid in bench_children(job_id) if member_of(pid) == member_id[-15:]]


def test_a_group_run_of_three_models(agent_models, tmp_path):
    models = [agent_models.dense, agent_models.int8, agent_models.sparse]
    outcome = run_agent(
        "run",
        "--runs=12",
        "--round-runs=4",
        "--threads=1,2",
        "--id=g3",
        "--label=dense",
        "--label=int8",
        "--label=--sparse",  # a value that looks like a flag stays a value
        "--spool",
        tmp_path / "spool",
        "--json",
        "--",
        *models,
    )
    assert outcome.code == 0, outcome.err
    result = Result.from_json(outcome.out)
    assert (result.job_id, result.status, result.measurements) == ("g3", "ok", [])
    assert result.model_sha256 == sha256_file(str(models[0]))
    assert [m.job_id for m in result.members] == ["g3.1", "g3.2", "g3.3"]
    assert [m.label for m in result.members] == ["dense", "int8", "--sparse"]
    assert [m.model_sha256 for m in result.members] == [sha256_file(str(p)) for p in models]
    for member in result.members:
        assert member.group == "g3" and member.status == "ok", member.error
        assert [m.threads for m in member.measurements] == [1, 2]
        for m in member.measurements:
            assert m.rounds == [4, 4, 4] and len(m.latencies_ms) == 12
            assert m.summary.count == 12 and m.summary.p50_ci is not None
            assert m.peak_rss_kb > m.rss_before_model_kb > 0 and m.outputs["digest"]
            assert m.precision is None
    # each member's own warnings: only the sparse model is told about the sparse path
    codes = [{w.code for w in m.warnings} for m in result.members]
    if os.uname().machine == "x86_64":
        assert "sparse_path_unavailable" in codes[2]
        assert "sparse_path_unavailable" not in codes[0] | codes[1]
    assert result.members[2].sparse_path["model_is_sparse"] is True
    assert result.members[0].sparse_path["model_is_sparse"] is False


class RecordingChild(RoundsChild):
    """A real rounds child that notes the order in which the agent asks for runs."""

    asked: ClassVar[list] = []

    def __init__(self, member_id: str, *args) -> None:
        super().__init__(*args)
        self.member_id = member_id

    def ask(self, command, watch, limit_s):
        if command.get("cmd") == "runs":
            RecordingChild.asked.append(self.member_id)
        return super().ask(command, watch, limit_s)


def test_rounds_rotate_the_order(agent_models):
    spec = {
        "model_path": str(agent_models.dense),
        "runtime": "ai_edge_litert",
        "threads": 1,
        "xnnpack": True,
        "warmup": 1,
        "runs": 6,
        "min_seconds": None,
        "delay_ms": 0.0,
        "cpus": None,
        "inputs_path": None,
        "seed": 0,
    }
    members = [MemberRun(name, dict(spec)) for name in "ABC"]
    RecordingChild.asked = []

    def start(member):
        return RecordingChild(member.member_id, child_argv("rot", member.member_id), _child_env())

    watch = Watch(time.monotonic() + 60, 60, lambda: None, lambda: False, RuntimeError, 0.5)
    measured = measure_in_rounds(members, BenchOptions(runs=6, round_runs=2), watch, start)
    assert RecordingChild.asked == list("ABCBCACAB")
    assert [m.rounds for m in measured] == [[2, 2, 2]] * 3
    assert bench_children("rot") == []


def test_a_crashing_member_leaves_the_others_measured(agent_models):
    paths = [agent_models.dense, agent_models.int8, agent_models.dense]
    members = [GroupMember(f"gc.{i}", str(p), sha256_file(str(p))) for i, p in enumerate(paths, 1)]
    outcome = {}

    def work():
        outcome["result"] = benchmark_group(
            "gc",
            members,
            BenchOptions(
                runs=None, min_seconds=2.0, round_runs=3, timeout_s=60, rounds_per_process=100_000
            ),
        )

    thread = threading.Thread(target=work)
    thread.start()
    deadline = time.monotonic() + 30
    while len(bench_children("gc")) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    (pid,) = member_children("gc", "gc.2")  # one process all along (rounds_per_process)
    time.sleep(0.3)  # into the rounds
    os.kill(pid, signal.SIGSEGV)
    thread.join(60)
    result = outcome["result"]
    assert result.status == "ok"
    first, crashed, third = result.members
    assert crashed.status == "error" and crashed.error_kind == "crashed"
    assert "SIGSEGV" in crashed.error and crashed.measurements[0].error_kind == "crashed"
    for member in (first, third):
        assert member.status == "ok", member.error
        (m,) = member.measurements
        assert sum(m.rounds) == len(m.latencies_ms) and len(m.rounds) > 3
    assert len(first.measurements[0].rounds) == len(third.measurements[0].rounds)
    assert bench_children("gc") == []


def test_a_model_the_runtime_rejects_is_that_members_error(agent_models, tmp_path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"TFL3" * 10)
    outcome = run_agent(
        "run", agent_models.dense, broken, "--runs=4", "--spool", tmp_path / "s", "--json"
    )
    assert outcome.code == 1  # not every member measured fine
    result = Result.from_json(outcome.out)
    good, bad = result.members
    assert result.status == "ok" and good.status == "ok" and len(good.measurements) == 1
    assert bad.status == "error" and bad.error_kind == "bad_model" and bad.measurements == []


def test_precision_reached(agent_models, tmp_path):
    outcome = run_agent(
        "run",
        agent_models.dense,
        "--runs=10",
        "--precision=20%",
        "--max-seconds=10",
        "--spool",
        tmp_path / "s",
        "--json",
    )
    assert outcome.code == 0, outcome.err
    (m,) = Result.from_json(outcome.out).measurements
    precision = m.precision
    assert precision["target"] == 0.2 and precision["reached"] is True
    assert precision["half_width"] <= 0.2 and precision["runs"] == len(m.latencies_ms) >= 10
    assert precision["half_width"] == pytest.approx(m.summary.half_width())
    assert precision["seconds"] < 10 and sum(m.rounds) == precision["runs"]


def test_precision_not_reached_within_max_seconds(agent_models, tmp_path):
    start = time.monotonic()
    outcome = run_agent(
        "run",
        agent_models.dense,
        agent_models.int8,
        "--runs=5",
        "--precision=0.000001",
        "--max-seconds=1",
        "--delay-ms=1",
        "--spool",
        tmp_path / "s",
        "--json",
    )
    assert time.monotonic() - start < 30
    assert outcome.code == 0, outcome.err
    for member in Result.from_json(outcome.out).members:
        (m,) = member.measurements
        assert m.precision["reached"] is False and m.precision["half_width"] > 0.000001
        assert 1.0 <= m.precision["seconds"] < 5 and m.precision["runs"] > 5
    lengths = {
        len(member.measurements[0].rounds) for member in Result.from_json(outcome.out).members
    }
    assert len(lengths) == 1


def test_a_group_job_through_the_spool(agent, agent_models, tmp_path):
    """submit --sha256 x3 (one of them then missing, one corrupt), serve, result, ack."""
    spool = tmp_path / "spool"
    shas = []
    for path in (agent_models.dense, agent_models.int8, agent_models.sparse):
        queued = agent("submit", path, "--spool", spool, "--json")
        assert queued.code == 0, queued.err
        shas.append(sha256_file(str(path)))
    # the three single jobs above are not the point: drop them
    for entry in os.listdir(spool / "jobs" / "queued"):
        os.unlink(spool / "jobs" / "queued" / entry)
    args = [f"--sha256={s}" for s in shas] + ["--label=a", "--label=b", "--label=c"]
    submitted = agent(
        "submit", *args, "--member-id=m-a", "--member-id=m-b", "--member-id=m-c",
        "--id=grp", "--runs=3", "--round-runs=1", "--spool", spool, "--json",
    )  # fmt: skip
    assert submitted.code == 0, submitted.err
    assert submitted.json == {"job_id": "grp", "members": ["m-a", "m-b", "m-c"]}
    os.unlink(spool / "models" / f"{shas[1]}.tflite")
    with open(spool / "models" / f"{shas[2]}.tflite", "ab") as handle:
        handle.write(b"x")
    served = agent("serve", "--once", "--spool", spool)
    assert served.code == 0, served.err
    shown = agent("wait", "grp", "--timeout=5", "--spool", spool, "--json")
    assert shown.code == 1  # two members failed
    result = Result.from_json(shown.out)
    assert [m.job_id for m in result.members] == ["m-a", "m-b", "m-c"]
    ok, missing, corrupt = result.members
    assert ok.status == "ok" and ok.measurements[0].rounds == [1, 1, 1]
    assert missing.error_kind == "model_missing" and corrupt.error_kind == "hash_mismatch"
    assert all(m.group == "grp" for m in result.members)
    text = agent("result", "grp", "--spool", spool)
    assert "group job grp: 3 models" in text.out and "member m-c  (c)" in text.out
    assert agent("ack", "grp", "--spool", spool).code == 0
    assert agent("result", "grp", "--spool", spool).code == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "MODEL", "MODEL", "--label=a"], "give one --label per model: 2 models, 1 labels"),
        (["run", "MODEL", "--label=a", "--label=b"], "give one --label for one model, not 2"),
        (["run", "MODEL", "MODEL", "--member-id=x"], "give one --member-id per model"),
        (["run", "MODEL", "MODEL", "--member-id=x", "--member-id=x"], "appears twice"),
        (["run", "MODEL", "MODEL", "--member-id=a/b", "--member-id=x"], "--member-id 'a/b'"),
        (["run", "MODEL", "--member-id=x"], "--member-id is for several models"),
        (["run", "MODEL", "--precision=0.5"], "--precision must be a fraction > 0 and < 0.5"),
        (["run", "MODEL", "--precision=60%"], "--precision must be a fraction > 0 and < 0.5"),
        (["run", "MODEL", "--precision=-1"], "--precision must be a fraction > 0 and < 0.5"),
        (["run", "MODEL", "--precision=abc"], "is not a fraction (write 0.02 or 2%)"),
        (["run", "MODEL", "--round-runs=0"], "--round-runs must be from 1 to 100000"),
        (["run", "MODEL", "--rounds-per-process=0"], "--rounds-per-process must be from 1 to"),
        (["run", "MODEL", "--max-seconds=0"], "--max-seconds must be > 0 and <= 86400"),
        (["submit", "MODEL", "MODEL", "--id=g", "--member-id=g", "--member-id=h"], "own id"),
        (["submit", "--sha256=" + "a" * 64, "--sha256=" + "b" * 64], "is not in"),
    ],
)
def test_bad_group_and_precision_input(agent, agent_models, tmp_path, args, message):
    args = [str(agent_models.dense) if a == "MODEL" else a for a in args]
    spool = tmp_path / "spool"
    outcome = agent(*args, "--spool", spool, "--json")
    assert outcome.code == 2, (outcome.code, outcome.err)
    assert message in outcome.err and outcome.err.count("\n") == 1
    queued = spool / "jobs" / "queued"
    assert not queued.exists() or os.listdir(queued) == []


def test_the_daemon_treats_a_group_as_one_job(agent, agent_models, tmp_path, start_daemon):
    """SIGTERM re-queues the whole group; a kill -9 leaves it in running/ and the next agent
    runs it once more, with rerun_after_interruption on the group and on every member."""
    spool = tmp_path / "spool"
    submitted = agent(
        "submit", agent_models.dense, agent_models.int8, "--id=dg", "--runs=1",
        "--min-seconds=2", "--spool", spool,
    )  # fmt: skip
    assert submitted.code == 0, submitted.err
    daemon = start_daemon(spool, "--poll", "0.1")
    daemon.wait_until(lambda: len(bench_children("dg")) == 2, what="both members to start")
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=30) == 0
    assert bench_children("dg") == []
    assert (spool / "jobs" / "queued" / "dg.json").exists()
    second = start_daemon(spool, "--poll", "0.1")
    second.wait_until(lambda: len(bench_children("dg")) == 2, what="the rerun to start")
    second.kill9()
    deadline = time.monotonic() + 10
    while bench_children("dg") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert bench_children("dg") == []  # every member's child died with the agent
    assert (spool / "jobs" / "running" / "dg.json").exists()
    assert agent("serve", "--once", "--spool", spool).code == 0
    result = Result.from_json(agent("result", "dg", "--spool", spool, "--json").out)
    assert result.status == "ok" and [m.status for m in result.members] == ["ok", "ok"]
    for target in [result, *result.members]:
        assert "rerun_after_interruption" in {w.code for w in target.warnings}
    assert [n for n in os.listdir(spool / "results") if n.endswith(".json")] == ["dg.json"]


def test_a_hung_member_is_killed_and_the_others_finish(agent_models, monkeypatch):
    """SIGSTOP one member's child: it stops answering, is killed as hung (`timeout`), and
    the others are measured to the end. The hang floor is lowered so the test is quick."""
    from device_agents import rounds

    monkeypatch.setattr(rounds, "HANG_FLOOR_S", 1.0)
    paths = [agent_models.dense, agent_models.int8, agent_models.sparse]
    members = [GroupMember(f"gh.{i}", str(p), sha256_file(str(p))) for i, p in enumerate(paths, 1)]
    outcome = {}

    def work():
        outcome["result"] = benchmark_group(
            "gh",
            members,
            BenchOptions(
                runs=None, min_seconds=2.5, round_runs=3, timeout_s=60, rounds_per_process=100_000
            ),
        )

    thread = threading.Thread(target=work)
    thread.start()
    deadline = time.monotonic() + 30
    while len(bench_children("gh")) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    (pid,) = member_children("gh", "gh.1")  # set up: the next ones started after it; one
    # process all along (rounds_per_process)
    time.sleep(0.3)
    os.kill(pid, signal.SIGSTOP)
    thread.join(60)
    result = outcome["result"]
    hung, second, third = result.members
    assert hung.status == "error" and hung.error_kind == "timeout"
    assert "stopped answering" in hung.error
    assert second.status == "ok" and third.status == "ok"
    assert second.measurements[0].rounds == third.measurements[0].rounds
    assert bench_children("gh") == []


def test_fresh_processes_every_round_per_process(agent_models, tmp_path):
    """--rounds-per-process=1: every round in a new process per member; default 2."""
    for per_process, processes in (("--rounds-per-process=1", [1] * 6), (None, [2, 2, 2])):
        args = [a for a in (per_process,) if a]
        outcome = run_agent(
            "run", agent_models.dense, agent_models.int8, "--runs=6", "--round-runs=1",
            "--warmup=1", *args, "--spool", tmp_path / "s", "--json",
        )  # fmt: skip
        assert outcome.code == 0, outcome.err
        for member in Result.from_json(outcome.out).members:
            (m,) = member.measurements
            assert m.rounds == [1] * 6 and m.processes == processes
            assert m.load_ms is not None and m.first_invoke_ms is not None
            assert m.peak_rss_kb > m.rss_before_model_kb > 0 and m.outputs["digest"]


def _spec(model) -> dict:
    return {
        "model_path": str(model),
        "runtime": "ai_edge_litert",
        "threads": 1,
        "xnnpack": True,
        "warmup": 1,
        "runs": 6,
        "min_seconds": None,
        "delay_ms": 0.0,
        "cpus": None,
        "inputs_path": None,
        "seed": 0,
    }


def test_each_generation_is_a_new_child(agent_models):
    """The pids of every member's children: one per `rounds_per_process` rounds."""
    for per_process, expected in ((1, 6), (2, 3)):
        pids: dict[str, list[int]] = {"A": [], "B": []}

        def start(member, pids=pids):
            child = RoundsChild(child_argv("gen", member.member_id), _child_env())
            pids[member.member_id].append(child.proc.pid)
            return child

        members = [MemberRun(name, _spec(agent_models.dense)) for name in "AB"]
        watch = Watch(time.monotonic() + 60, 60, lambda: None, lambda: False, RuntimeError, 0.5)
        options = BenchOptions(runs=6, round_runs=1, rounds_per_process=per_process)
        measured = measure_in_rounds(members, options, watch, start)
        for m in measured:
            assert m.status == "ok" and m.processes == [per_process] * expected
        assert [len(set(p)) for p in pids.values()] == [expected, expected]
        assert bench_children("gen") == []


def test_a_fresh_child_that_fails_is_that_members_error(agent_models, monkeypatch):
    """B's second process exits without answering, C's hangs in its setup: both become
    error measurements; A is measured to the end in its fresh processes."""
    import sys

    from device_agents import rounds

    monkeypatch.setattr(rounds, "HANG_FLOOR_S", 1.0)
    monkeypatch.setattr(rounds, "HANG_FACTOR", 1.0)
    started: dict[str, int] = {}
    broken = {
        "B": [sys.executable, "-c", "import sys; sys.exit(3)"],
        "C": [sys.executable, "-c", "import time; time.sleep(60)"],
    }

    def start(member):
        started[member.member_id] = started.get(member.member_id, 0) + 1
        argv = child_argv("fresh", member.member_id)
        if started[member.member_id] == 2 and member.member_id in broken:
            argv = broken[member.member_id]
        return RoundsChild(argv, _child_env())

    members = [MemberRun(name, _spec(agent_models.dense)) for name in "ABC"]
    watch = Watch(time.monotonic() + 60, 60, lambda: None, lambda: False, RuntimeError, 0.2)
    options = BenchOptions(runs=6, round_runs=1, rounds_per_process=2)
    a, b, c = measure_in_rounds(members, options, watch, start)
    assert a.status == "ok" and a.processes == [2, 2, 2] and len(a.latencies_ms) == 6, a.error
    assert b.status == "error" and b.error_kind == "runtime_error" and "code 3" in b.error
    assert c.status == "error" and c.error_kind == "timeout" and "stopped answering" in c.error
    assert started == {"A": 3, "B": 2, "C": 2}
