"""The real daemon on a real spool: the acceptance run (20+ jobs, broken ones, kill -9, restart),
restart recovery, SIGTERM, a second daemon, no network port, and a disk that fills up."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from device_agents.protocol import Job, Result, error_result
from device_agents.spool import Spool

from .conftest import bench_children, run_agent

SHA_OF_NOTHING = hashlib.sha256(b"never uploaded").hexdigest()


def write_job_file(spool: Path, name: str, obj) -> None:
    text = obj if isinstance(obj, str) else json.dumps(obj)
    (spool / "jobs" / "queued" / name).write_text(text)


def raw_job(job_id: str, sha: str, **changes) -> dict:
    job = Job(id=job_id, model_sha256=sha, options=Job(id="x", model_sha256=sha).options).to_dict()
    job["options"]["runs"] = 3
    job.update(changes)
    return job


def result_ids(spool: Path) -> set:
    return {p.stem for p in (spool / "results").glob("*.json")}


def inet_socket_inodes() -> set:
    """Inodes of every TCP/UDP/raw socket the kernel knows (listening or not)."""
    inodes = set()
    for table in ("tcp", "tcp6", "udp", "udp6", "raw", "raw6"):
        with contextlib.suppress(OSError), open(f"/proc/net/{table}") as handle:
            for line in list(handle)[1:]:
                fields = line.split()
                if len(fields) > 9:
                    inodes.add(fields[9])
    return inodes


def process_socket_inodes(pid: int) -> set:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    return inodes


def test_acceptance_every_job_gets_exactly_one_result(
    agent, spool, agent_models, start_daemon, tmp_path
):
    s = Spool(str(spool)).ensure()
    expected = {}  # job id -> (status, error_kind)

    def submit(model, job_id, *options, status="ok", kind=None):
        outcome = agent("submit", model, "--id", job_id, "--spool", spool, *options)
        assert outcome.code == 0, outcome.err
        assert outcome.out.splitlines()[-1] == job_id
        expected[job_id] = (status, kind)
        time.sleep(0.01)  # distinct mtimes keep the queue order

    # the job that will be running when the daemon is killed
    submit(agent_models.dense, "long-1", "--runs", "1", "--min-seconds", "3", "--warmup", "0")
    np.save(tmp_path / "good.npy", np.zeros((3, 32, 32, 3), np.float32))
    np.save(tmp_path / "wrong-shape.npy", np.zeros((3, 28, 28, 1), np.float32))
    np.save(tmp_path / "wrong-dtype.npy", np.zeros((3, 32, 32, 3), np.float64))
    good = [
        (agent_models.dense, ["--runs", "3"]),
        (agent_models.dense, ["--threads", "1,2", "--runs", "2"]),
        (agent_models.sparse, ["--runs", "2"]),
        (agent_models.sparse, ["--no-xnnpack", "--runs", "2"]),
        (agent_models.int8, ["--runs", "2", "--cpus", "0"]),
        (agent_models.dense, ["--inputs", tmp_path / "good.npy", "--runs", "2"]),
        (agent_models.dense, ["--min-seconds", "0.2", "--warmup", "0"]),
        (agent_models.dense, ["--delay-ms", "5", "--runs", "2", "--seed", "9"]),
    ]
    for index, (model, options) in enumerate(good):
        submit(model, f"good-{index}", *options)

    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"\xff\xff\xff\x7f" + agent_models.dense.read_bytes()[4:])
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(agent_models.dense.read_bytes()[:3000])
    not_tflite = tmp_path / "readme.tflite"
    not_tflite.write_text("# not a model\n")
    submit(corrupt, "corrupt-1", status="error", kind="bad_model")
    submit(truncated, "truncated-1", status="error", kind="bad_model")
    submit(not_tflite, "not-tflite-1", status="error", kind="bad_model")
    submit(
        agent_models.dense,
        "shape-1",
        "--inputs",
        tmp_path / "wrong-shape.npy",
        status="error",
        kind="bad_inputs",
    )
    submit(
        agent_models.dense,
        "dtype-1",
        "--inputs",
        tmp_path / "wrong-dtype.npy",
        status="error",
        kind="bad_inputs",
    )
    mismatched = tmp_path / "mismatch.tflite"
    mismatched.write_bytes(agent_models.dense.read_bytes() + b"\0")
    submit(mismatched, "mismatch-1", status="error", kind="hash_mismatch")
    mismatch_sha = hashlib.sha256(mismatched.read_bytes()).hexdigest()
    Path(s.model_path(mismatch_sha)).write_bytes(b"bit rot")  # the stored copy goes bad

    dense_sha = hashlib.sha256(agent_models.dense.read_bytes()).hexdigest()
    write_job_file(spool, "malformed-1.json", '{"schema": 1, "id": "malformed-1", ')
    write_job_file(spool, "schema-1.json", raw_job("schema-1", dense_sha, schema=99))
    write_job_file(spool, "escape-1.json", raw_job("escape-1", dense_sha, model="../../etc/passwd"))
    zero = raw_job("threads-0", dense_sha)
    zero["options"]["threads"] = [0]
    write_job_file(spool, "threads-0.json", zero)
    negative = raw_job("threads-neg", dense_sha)
    negative["options"]["threads"] = [-2]
    write_job_file(spool, "threads-neg.json", negative)
    write_job_file(spool, "renamed-1.json", raw_job("someone-else", dense_sha))
    write_job_file(spool, "missing-1.json", raw_job("missing-1", SHA_OF_NOTHING))
    write_job_file(spool, "list-1.json", "[1, 2, 3]")
    for job_id in (
        "malformed-1",
        "schema-1",
        "escape-1",
        "threads-0",
        "threads-neg",
        "renamed-1",
        "list-1",
    ):
        expected[job_id] = ("error", "bad_job")
    expected["missing-1"] = ("error", "model_missing")
    write_job_file(spool, "not a job id!.json", "{}")  # cannot be named: moved aside
    assert len(expected) >= 20

    first = start_daemon(spool, "--poll", "0.1")
    first.wait_until(lambda: bench_children("long-1"), what="long-1 to start")
    time.sleep(1.0)
    (child,) = bench_children("long-1")
    # no network port: neither the daemon nor its benchmark child holds an inet socket
    kernel_sockets = inet_socket_inodes()
    for pid in (first.pid, child):
        assert not process_socket_inodes(pid) & kernel_sockets
    first.kill9()
    deadline = time.monotonic() + 10
    while bench_children("long-1") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert bench_children("long-1") == []  # the child died with its parent
    assert (spool / "jobs" / "running" / "long-1.json").exists()  # not lost
    assert "long-1" not in result_ids(spool)

    second = start_daemon(spool, "--poll", "0.1")
    second.wait_until(
        lambda: result_ids(spool) >= set(expected) and not os.listdir(spool / "jobs" / "running"),
        timeout=240,
        what="every result",
    )
    assert second.stop() == 0
    assert result_ids(spool) == set(expected)
    log = (spool / "logs" / "agent.log").read_text()
    for job_id, (status, kind) in expected.items():
        result = Result.from_json((spool / "results" / f"{job_id}.json").read_text())
        assert result.job_id == job_id
        assert (result.status, result.error_kind) == (status, kind), (job_id, result.error)
        assert result.runtime["name"] == "ai_edge_litert" and result.runtime["version"]
        if status == "error":
            assert result.error and "\n" not in result.error
        assert log.count(f"finished job {job_id}:") == 1, job_id
    rerun = Result.from_json((spool / "results" / "long-1.json").read_text())
    assert "rerun_after_interruption" in {w.code for w in rerun.warnings}
    assert "re-queued" in log
    assert os.listdir(spool / "jobs" / "queued") == []
    assert os.listdir(spool / "jobs" / "attempts") == []
    assert os.listdir(spool / "jobs" / "rejected") == ["not a job id!.json"]
    assert not Path(s.model_path(mismatch_sha)).exists()  # the corrupt copy was removed


def test_restart_recovery_never_runs_a_finished_job_twice(spool, agent_models):
    s = Spool(str(spool)).ensure()
    sha, _ = s.import_model(str(agent_models.dense))
    # finished, but the agent died before clearing running/
    s.queue(Job(id="done-1", model_sha256=sha))
    assert s.claim_next() == "done-1"
    s.write_result(error_result("done-1", sha, "the real first result", error_kind="timeout"))
    # interrupted twice already
    s.queue(Job(id="twice-1", model_sha256=sha))
    assert s.claim_next() == "twice-1"
    s.set_attempts("twice-1", 2)
    outcome = run_agent("serve", "--once", "--spool", spool)
    assert outcome.code == 0, outcome.err
    assert Result.from_json(s.read_result("done-1")).error == "the real first result"
    twice = Result.from_json(s.read_result("twice-1"))
    assert twice.error_kind == "interrupted" and "killed 2 times" in twice.error
    assert os.listdir(spool / "jobs" / "running") == []


def test_sigterm_requeues_the_running_job(agent, spool, agent_models, start_daemon):
    job_id = agent(
        "submit", agent_models.dense, "--min-seconds", "2", "--spool", spool
    ).out.splitlines()[-1]
    daemon = start_daemon(spool, "--poll", "0.1")
    daemon.wait_until(lambda: bench_children(job_id), what="the job to start")
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=30) == 0
    assert bench_children(job_id) == []
    assert (spool / "jobs" / "queued" / f"{job_id}.json").exists()
    assert agent("serve", "--once", "--spool", spool).code == 0
    result = Result.from_json(agent("result", job_id, "--spool", spool, "--json").out)
    assert result.status == "ok"
    assert "rerun_after_interruption" not in {w.code for w in result.warnings}  # a clean stop


def test_one_daemon_per_spool(spool, start_daemon):
    daemon = start_daemon(spool, "--poll", "0.1")
    daemon.wait_until(
        lambda: (spool / "daemon.lock").exists() and (spool / "daemon.lock").read_text().strip(),
        what="the lock",
    )
    status = run_agent("status", "--spool", spool, "--json").json
    assert status["daemon"] == {"running": True, "pid": daemon.pid}
    second = run_agent("serve", "--once", "--spool", spool)
    assert second.code == 1 and f"another agent (pid {daemon.pid}) already serves" in second.err


def test_a_full_disk_delays_the_result_and_loses_nothing(
    agent, tmp_path, agent_models, start_daemon
):
    if os.getuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount tmpfs here")
    try:
        spool = mount / "spool"
        job_id = agent(
            "submit", agent_models.dense, "--runs", "2", "--spool", spool
        ).out.splitlines()[-1]
        filler = mount / "filler"
        with open(filler, "wb", buffering=0) as handle, contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 4096)
        with pytest.raises(OSError) as full:
            (mount / "probe").write_bytes(b"\0" * 4096)
        assert full.value.errno == errno.ENOSPC
        daemon = start_daemon(spool, "--poll", "0.1", "--write-retry", "600")
        daemon.wait_until(
            lambda: "cannot write the result" in daemon.output(), what="the write failure"
        )
        status = run_agent("status", "--spool", spool, "--json").json
        assert status["running"] == [job_id] and status["results"] == []
        filler.unlink()
        daemon.wait_until(
            lambda: (spool / "results" / f"{job_id}.json").exists(), what="the result"
        )
        result = Result.from_json((spool / "results" / f"{job_id}.json").read_text())
        assert result.status == "ok" and len(result.measurements[0].latencies_ms) == 2
        assert daemon.stop() == 0
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_result_too_big_to_write_becomes_a_short_error(agent, spool, agent_models, start_daemon):
    job_id = agent("submit", agent_models.dense, "--runs", "2", "--spool", spool).out.splitlines()[
        -1
    ]

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))

    daemon = start_daemon(spool, "--poll", "0.1", "--write-retry", "0", preexec=limit_file_size)
    daemon.wait_until(lambda: (spool / "results" / f"{job_id}.json").exists(), what="a result")
    result = Result.from_json((spool / "results" / f"{job_id}.json").read_text())
    assert result.status == "error" and result.error_kind == "write_failed"
    assert "File too large" in result.error
    assert daemon.proc.poll() is None  # still serving


def test_serving_in_process_gives_the_caller_its_signal_handlers_back(agent, spool):
    """A caller that runs the daemon in its own process (the in-process agent CLI) keeps its
    Ctrl-C: the daemon's stop handler goes when `serve` returns."""
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    assert agent("serve", "--once", "--spool", spool).code == 0
    assert {sig: signal.getsignal(sig) for sig in before} == before
