"""`edgeprune-agent cancel` on a real spool with real daemons and benchmark children: a queued
job is cancelled at once, a running one within a tick (its process group killed), a group
whole; a cancelled job is never run or re-queued, and cancelling twice or an unknown id is
no error."""

from __future__ import annotations

import os
import time

import pytest

from device_agents.protocol import Job, Measurement, ProtocolError, Result
from device_agents.spool import Spool

from .conftest import bench_children, run_agent

LONG = ("--runs", "100000", "--timeout", "300")


def submit(agent, spool, *models, extra=()) -> str:
    outcome = agent("submit", *models, *LONG, *extra, "--spool", spool)
    assert outcome.code == 0, outcome.err
    return outcome.out.splitlines()[-1]


def result_of(spool) -> callable:
    return lambda job_id: Result.from_json(Spool(str(spool)).read_result(job_id))


def test_a_queued_job_is_cancelled_at_once_and_never_runs(agent, spool, agent_models):
    job_id = submit(agent, spool, agent_models.dense, extra=("--label", "a.tflite"))
    outcome = agent("cancel", "--json", "--spool", spool, "--", job_id)
    assert outcome.code == 0, outcome.err
    assert outcome.json["jobs"] == [{"job_id": job_id, "was": "queued", "outcome": "cancelled"}]
    result = result_of(spool)(job_id)
    assert (result.status, result.error, result.error_kind) == (
        "cancelled",
        "cancelled by the host",
        "cancelled",
    )
    assert result.label == "a.tflite" and result.measurements == []
    assert not list((spool / "jobs" / "queued").iterdir())
    assert not [p for p in (spool / "jobs" / "cancel").iterdir()]  # nothing left behind
    assert agent("serve", "--once", "--spool", spool).code == 0  # nothing left to run
    assert result_of(spool)(job_id).status == "cancelled"


def test_a_running_job_is_killed_and_gets_a_cancelled_result(
    agent, spool, agent_models, start_daemon
):
    job_id = submit(agent, spool, agent_models.dense)
    daemon = start_daemon(spool, "--poll", "0.1")
    daemon.wait_until(lambda: bench_children(job_id), what="the job to start")
    outcome = agent("cancel", "--json", "--wait", "10", "--spool", spool, "--", job_id)
    assert outcome.json["jobs"] == [{"job_id": job_id, "was": "running", "outcome": "cancelled"}]
    assert bench_children(job_id) == []  # the child's process group is gone
    result = result_of(spool)(job_id)
    assert result.status == "cancelled" and result.measurements == []
    assert "cancelled: its benchmark process was killed" in daemon.output()
    # the daemon carries on with the next job as if nothing happened
    quick = agent("submit", agent_models.dense, "--runs", "3", "--spool", spool).out.split()[-1]
    assert run_agent("wait", quick, "--timeout", "60", "--spool", spool).code == 0
    assert daemon.stop() == 0
    assert not (spool / "jobs" / "queued" / f"{job_id}.json").exists()


def test_a_group_is_cancelled_whole_by_a_member_id(agent, spool, agent_models, start_daemon):
    group = submit(agent, spool, agent_models.dense, agent_models.sparse, extra=("--id", "grp-1"))
    daemon = start_daemon(spool, "--poll", "0.1")
    daemon.wait_until(lambda: bench_children(group), what="the group to start")
    outcome = agent("cancel", "--json", "--spool", spool, "--", "grp-1.2")
    (record,) = outcome.json["jobs"]
    assert record == {
        "job_id": "grp-1.2",
        "was": "running",
        "group": "grp-1",
        "outcome": "cancelled",
    }
    assert bench_children(group) == []
    result = result_of(spool)(group)
    assert result.status == "cancelled"
    assert [(m.job_id, m.status, m.group) for m in result.members] == [
        ("grp-1.1", "cancelled", "grp-1"),
        ("grp-1.2", "cancelled", "grp-1"),
    ]


def test_cancel_is_idempotent_and_says_what_happened(agent, spool, agent_models):
    job_id = submit(agent, spool, agent_models.dense)
    assert agent("cancel", "--spool", spool, "--", job_id).code == 0
    again = agent("cancel", "--json", "--spool", spool, "--", job_id, "never-seen")
    assert again.code == 0, again.err
    assert again.json["jobs"] == [
        {"job_id": job_id, "was": "done", "outcome": "finished", "status": "cancelled"},
        {"job_id": "never-seen", "was": None, "outcome": "unknown"},
    ]
    text = agent("cancel", "--spool", spool, "--", "never-seen").out
    assert "no such job here" in text
    bad = agent("cancel", "--spool", spool, "--", "../etc")
    assert bad.code == 2 and "job id" in bad.err


def test_a_job_left_running_by_a_dead_agent_is_cancelled_here(agent, spool, agent_models):
    s = Spool(str(spool)).ensure()
    sha, _ = s.import_model(str(agent_models.dense))
    s.queue(Job(id="orphan-1", model_sha256=sha))
    assert s.claim_next() == "orphan-1"  # its agent then died: nobody serves the spool
    outcome = agent("cancel", "--json", "--spool", spool, "--", "orphan-1")
    assert outcome.json["jobs"][0]["outcome"] == "cancelled"
    assert result_of(spool)("orphan-1").status == "cancelled"
    assert os.listdir(spool / "jobs" / "running") == []


@pytest.mark.parametrize("where", ["queued", "running"])
def test_a_marked_job_is_never_run_nor_requeued(spool, agent_models, where):
    """A cancel that raced a claim (queued) or an agent that died after the mark (running)."""
    s = Spool(str(spool)).ensure()
    sha, _ = s.import_model(str(agent_models.dense))
    s.queue(Job(id="marked-1", model_sha256=sha))
    if where == "running":
        assert s.claim_next() == "marked-1"
    s.mark_cancelled("marked-1")
    began = time.time()
    outcome = run_agent("serve", "--once", "--spool", spool)
    assert outcome.code == 0, outcome.err
    result = Result.from_json(s.read_result("marked-1"))
    assert result.status == "cancelled" and result.started_at >= began - 1
    assert os.listdir(spool / "jobs" / "queued") == os.listdir(spool / "jobs" / "running") == []
    assert not s.cancel_requested("marked-1")


def test_the_protocol_accepts_cancelled_results_only_without_numbers(agent_models):
    text = Result(
        job_id="c-1", model_sha256="a" * 64, status="cancelled", error="cancelled by the host"
    ).to_json()
    assert Result.from_json(text).status == "cancelled"
    with pytest.raises(ProtocolError, match="needs a message"):
        Result(job_id="c-1", model_sha256="a" * 64, status="cancelled").validate()
    with pytest.raises(ProtocolError, match="holds no measurements"):
        Result(
            job_id="c-1",
            model_sha256="a" * 64,
            status="cancelled",
            error="x",
            measurements=[Measurement(threads=1, xnnpack=True, status="error", error="x")],
        ).validate()
    with pytest.raises(ProtocolError, match="'ok', 'error' or 'cancelled'"):
        Result(job_id="c-1", model_sha256="a" * 64, status="stopped", error="x").validate()
