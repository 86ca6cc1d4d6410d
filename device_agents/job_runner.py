"""Turn one job file from the spool into one Result, whatever the file holds.

Everything a job names is resolved inside the spool: its model must be
`models/<sha256>.tflite` and hash to that name, its inputs `inputs/<sha256>.npz|npy`. A job
that cannot run still gets a Result (status "error", one line saying why), so the host
always hears back.
"""

from __future__ import annotations

import os
from typing import Dict, Optional, Tuple, Union

from . import __version__
from .bench import GroupMember, StopCheck, benchmark_group, benchmark_model, never_stop
from .integrity import sha256_file
from .progress import ProgressFile, Report, no_report
from .protocol import (
    UNKNOWN_SHA256,
    Job,
    ProtocolError,
    Result,
    error_result,
    sha256_in,
)
from .runtimes import describe_runtime
from .spool import Spool


def result_for_job_text(
    spool: Spool,
    job_id: str,
    text: Optional[str],
    problem: Optional[str],
    should_stop: StopCheck = never_stop,
) -> Result:
    """Parse and run a claimed job file; a malformed one becomes a bad_job error result."""
    if problem is not None:
        return _bad_job(job_id, UNKNOWN_SHA256, problem)
    try:
        job = Job.from_json(text)
    except ProtocolError as exc:
        return _bad_job(job_id, sha256_in(text), f"job file {job_id}.json: {exc}")
    if job.id != job_id:
        return _bad_job(
            job_id, job.model_sha256, f"job file {job_id}.json holds id {job.id!r}; they must match"
        )
    return run_job(spool, job, should_stop)


def run_job(spool: Spool, job: Job, should_stop: StopCheck = never_stop) -> Result:
    report = ProgressFile(spool.root, job.id)  # progress/<job>.json, for `wait` and `status`
    report("checking", total=max(1, len(job.members)))
    if job.members:
        return run_group_job(spool, job, should_stop, report)

    def failed(kind: str, message: str) -> Result:
        return error_result(
            job.id,
            job.model_sha256,
            message,
            error_kind=kind,
            label=job.label,
            agent_version=__version__,
            options=job.options,
            runtime=describe_runtime(job.options.runtime),
        )

    problem = _model_problem(spool, job.model_sha256, {})
    if problem is not None:
        return failed(*problem)
    inputs = _inputs(spool, job)
    if isinstance(inputs, tuple):
        return failed(*inputs)
    inputs_path = inputs
    return benchmark_model(
        spool.model_path(job.model_sha256),
        job.options,
        job_id=job.id,
        model_sha256=job.model_sha256,
        label=job.label,
        inputs_path=inputs_path,
        should_stop=should_stop,
        report=report,
    )


def run_group_job(
    spool: Spool, job: Job, should_stop: StopCheck = never_stop, report: Report = no_report
) -> Result:
    """A group job: every member's model is checked; one that is missing or corrupt becomes
    that member's error Result and the others are measured together."""
    inputs = _inputs(spool, job)
    if isinstance(inputs, tuple):
        return error_result(
            job.id,
            job.model_sha256,
            inputs[1],
            error_kind=inputs[0],
            label=job.label,
            agent_version=__version__,
            options=job.options,
            runtime=describe_runtime(job.options.runtime),
        )
    members = []
    checked: Dict[str, Optional[Tuple[str, str]]] = {}  # the same model twice: hash it once
    for entry in job.members:
        problem = _model_problem(spool, entry.model_sha256, checked)
        members.append(
            GroupMember(
                id=entry.id,
                model_path=spool.model_path(entry.model_sha256),
                model_sha256=entry.model_sha256,
                label=entry.label,
                error_kind=problem[0] if problem else None,
                error=problem[1] if problem else None,
            )
        )
    return benchmark_group(
        job.id, members, job.options, inputs_path=inputs, should_stop=should_stop, report=report
    )


def _model_problem(
    spool: Spool, sha256: str, checked: Dict[str, Optional[Tuple[str, str]]]
) -> Optional[Tuple[str, str]]:
    """(kind, message) when models/<sha256>.tflite is missing or corrupt (then removed)."""
    if sha256 in checked:
        return checked[sha256]
    model = spool.model_path(sha256)
    problem: Optional[Tuple[str, str]] = None
    if not os.path.isfile(model):
        problem = (
            "model_missing",
            f"model {sha256} is not in the spool (models/{sha256}.tflite); "
            "upload and admit it, then submit again",
        )
    else:
        actual = sha256_file(model)
        if actual != sha256:
            os.unlink(model)  # so `has` reports it missing and the host uploads it again
            problem = (
                "hash_mismatch",
                f"models/{sha256}.tflite hashes to {actual}: the stored copy is corrupt and "
                "was removed; upload the model again",
            )
    checked[sha256] = problem
    return problem


def _inputs(spool: Spool, job: Job) -> Union[str, Tuple[str, str], None]:
    """The job's inputs file (None without one), or (kind, message) if it is not usable."""
    if not job.options.inputs:
        return None
    inputs_path = spool.inputs_path(job.options.inputs)
    if not os.path.isfile(inputs_path):
        return (
            "bad_inputs",
            f"inputs {job.options.inputs} are not in the spool's inputs/ directory; "
            "upload and admit them first",
        )
    expected = job.options.inputs.split(".", 1)[0]
    actual_inputs = sha256_file(inputs_path)
    if actual_inputs != expected:
        os.unlink(inputs_path)
        return (
            "hash_mismatch",
            f"inputs/{job.options.inputs} hashes to {actual_inputs}: the stored copy is "
            "corrupt and was removed; upload the inputs again",
        )
    return inputs_path


def _bad_job(job_id: str, sha: str, message: str) -> Result:
    return error_result(
        job_id,
        sha,
        message,
        error_kind="bad_job",
        agent_version=__version__,
        runtime=describe_runtime(),
    )
