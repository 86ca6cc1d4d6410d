"""`edgeprune-agent cancel`: stop jobs the host no longer wants; each gets a `cancelled` result.

A queued job is taken out of the queue (one rename into jobs/cancel/) and its result written
at once. A running job is marked (jobs/cancel/<id>, written atomically); the agent running it
(the daemon or `serve --once`) looks for the mark every tick (0.5 s), kills the benchmark's
process group and writes the result. A mark found when a job is claimed, or when a restarted
daemon recovers running/, means the same: a cancelled job is never run again nor re-queued.
A job in running/ that no agent serves (its agent died) is finished here, under the daemon
lock. Cancelling a finished or unknown job changes nothing and is no error: each id is
reported with what happened to it. A group job is cancelled whole, also when one member's
id is given; each member gets its own cancelled result inside the group's.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Dict, List, Optional

from . import __version__
from .locks import LockBusy, acquire_daemon_lock
from .protocol import (
    CANCELLED_MESSAGE,
    UNKNOWN_SHA256,
    Job,
    ProtocolError,
    Result,
    error_result,
    sha256_in,
)
from .spool import Spool

WAIT_POLL_S = 0.05


def cancelled_result(
    job_id: str, text: Optional[str], started_at: Optional[float] = None
) -> Result:
    """The `cancelled` Result of a job (its members too), built from its job file's text."""
    try:
        job: Optional[Job] = Job.from_json(text)
    except ProtocolError:
        job = None
    if job is None or job.id != job_id:
        return _cancelled(job_id, sha256_in(text) if text else UNKNOWN_SHA256)
    extra: Dict[str, Any] = {"options": job.options}
    if started_at is not None:
        extra["started_at"] = started_at
    members = [
        _cancelled(m.id, m.model_sha256, label=m.label, group=job.id, **extra) for m in job.members
    ]
    return _cancelled(
        job.id, job.model_sha256, label=job.label, members=members, **extra
    ).validate()


def _cancelled(job_id: str, sha256: str, **extra: Any) -> Result:
    return error_result(
        job_id,
        sha256,
        CANCELLED_MESSAGE,
        status="cancelled",
        error_kind="cancelled",
        agent_version=__version__,
        **extra,
    )


def cancel_jobs(spool: Spool, job_ids: List[str], wait_s: float) -> List[Dict[str, Any]]:
    """Cancel each job; one record per id: {job_id, was, outcome[, group, status]}.

    `outcome`: "cancelled" (its cancelled result is written), "stopping" (running; marked,
    and its agent had not written the result within `wait_s`), "finished" (it had already
    finished: `status` is its result's) or "unknown" (no such job here).
    """
    records = []
    deadline = time.monotonic() + wait_s
    for job_id in job_ids:
        record = _cancel_one(spool, job_id)
        records.append(record)
    for record in records:
        if record["outcome"] == "stopping":
            _await_stop(spool, record, deadline)
    return records


def _cancel_one(spool: Spool, given: str) -> Dict[str, Any]:
    job_id = given
    if os.path.lexists(spool.taken_file(job_id)):  # an earlier cancel stopped half-way
        return _write_taken(spool, given, job_id, "queued")
    state = spool.state_of(job_id)
    record: Dict[str, Any] = {"job_id": given, "was": state}
    if state is None:
        group = _group_of(spool, given)
        if group is None:
            return dict(record, outcome="unknown")
        job_id, record["group"] = group, group
        state = record["was"] = spool.state_of(job_id)
    if state in ("done", "acked"):
        return dict(record, outcome="finished", status=_status(spool, job_id))
    if state is None:
        return dict(record, outcome="unknown")
    spool.mark_cancelled(job_id)  # first: a daemon claiming it now still sees the mark
    if state == "queued" and spool.take_queued(job_id):
        return dict(record, **_write_taken(spool, given, job_id, "queued"))
    record["was"] = "running"
    if _finish_orphan(spool, job_id):
        return dict(record, outcome="cancelled")
    return dict(record, outcome="stopping")


def _write_taken(spool: Spool, given: str, job_id: str, was: str) -> Dict[str, Any]:
    text, _problem = spool.read_job_file(spool.taken_file(job_id), job_id)
    spool.write_result(cancelled_result(job_id, text))
    spool.drop_taken(job_id)
    record: Dict[str, Any] = {"job_id": given, "was": was, "outcome": "cancelled"}
    if job_id != given:
        record["group"] = job_id
    return record


def _finish_orphan(spool: Spool, job_id: str) -> bool:
    """A running job no agent serves (its agent died): write its cancelled result here."""
    try:
        lock_fd = acquire_daemon_lock(spool.root)
    except LockBusy:
        return False  # an agent serves the spool: it sees the mark within a tick
    try:
        if spool.state_of(job_id) != "running" or spool.has_result(job_id):
            return spool.has_result(job_id)
        text, _problem = spool.read_claimed(job_id)
        spool.write_result(cancelled_result(job_id, text))
        spool.finish(job_id)
        return True
    finally:
        os.close(lock_fd)


def _await_stop(spool: Spool, record: Dict[str, Any], deadline: float) -> None:
    job_id = record.get("group") or record["job_id"]
    while True:
        if spool.has_result(job_id):
            status = _status(spool, job_id)
            record["outcome"] = "cancelled" if status == "cancelled" else "finished"
            if record["outcome"] == "finished":
                record["status"] = status
            return
        if time.monotonic() >= deadline:
            return
        time.sleep(WAIT_POLL_S)


def _group_of(spool: Spool, member_id: str) -> Optional[str]:
    """The queued or running group job that has `member_id` as a member, if any."""
    for state in ("queued", "running"):
        for job_id in spool.list_ids(state):
            text, _problem = spool.read_job_file(spool.job_path(state, job_id), job_id)
            with contextlib.suppress(ProtocolError):
                if text and member_id in Job.from_json(text).member_ids():
                    return job_id
    return None


def _status(spool: Spool, job_id: str) -> Optional[str]:
    try:
        return Result.from_json(spool.read_result(job_id)).status
    except Exception:  # a result we cannot read is still a finished job
        return None


def describe(record: Dict[str, Any]) -> str:
    """One line per id for a terminal."""
    job_id, outcome = record["job_id"], record["outcome"]
    group = f" (group {record['group']})" if record.get("group") else ""
    if outcome == "cancelled":
        return f"cancelled {job_id}{group} (it was {record['was']})"
    if outcome == "stopping":
        return f"cancelling {job_id}{group}: marked; the agent running it stops it within a second"
    if outcome == "finished":
        return (
            f"{job_id}{group} had already finished ({record.get('status') or 'unreadable result'})"
        )
    return f"{job_id}: no such job here (nothing to cancel)"
