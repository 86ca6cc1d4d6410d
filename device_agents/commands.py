"""What each `edgeprune-agent` command does; cli.py parses arguments and prints.

Each function takes the parsed arguments and returns (document, human text, exit code). The
document is what `--json` prints; the human text is for a terminal.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

from . import request_context
from .errors import AgentError, BadInput, NotFound
from .file_kinds import inputs_suffix
from .integrity import sha256_file
from .locks import bench_lock, bench_lock_busy, daemon_state
from .protocol import (
    INPUTS_NAME_PATTERN,
    SHA256_PATTERN,
    BenchOptions,
    Job,
    JobMember,
    ProtocolError,
    Result,
    validate_job_id,
)
from .report import format_doctor, format_result
from .spool import Spool

Outcome = Tuple[Any, str, int]


FLAGS = {
    "round_runs": "round-runs",
    "rounds_per_process": "rounds-per-process",
    "max_seconds": "max-seconds",
    "min_seconds": "min-seconds",
    "delay_ms": "delay-ms",
    "timeout_s": "timeout",
}


def bench_options(args: argparse.Namespace) -> BenchOptions:
    """The bench options shared by submit and run, validated (BadInput on nonsense)."""
    runs = args.runs
    if runs is None and args.min_seconds is None:
        runs = BenchOptions().runs
    options = BenchOptions(
        threads=args.threads if args.threads is not None else [1],
        runs=runs,
        min_seconds=args.min_seconds,
        warmup=args.warmup,
        xnnpack=args.xnnpack,
        cpus=args.cpus,
        delay_ms=args.delay_ms,
        inputs=None,
        timeout_s=args.timeout,
        seed=args.seed,
        runtime=args.runtime,
        round_runs=args.round_runs,
        precision=args.precision,
        max_seconds=args.max_seconds,
        rounds_per_process=args.rounds_per_process,
    )
    try:
        return options.validate("bench options")
    except ProtocolError as exc:
        text = str(exc).replace("bench options: ", "--", 1)
        for field_name, flag in FLAGS.items():  # name the flag the user typed
            text = text.replace("--" + field_name + " ", "--" + flag + " ", 1)
        raise BadInput(text) from None


def member_plan(args: argparse.Namespace, group_id: str, count: int) -> Tuple[List[str], List[str]]:
    """Labels and member ids for `count` models, one each (defaults: '' and ID.1, ID.2, ...)."""
    labels = list(args.label or [])
    if count == 1:
        if len(labels) > 1:
            raise BadInput(f"give one --label for one model, not {len(labels)}")
        if args.member_id:
            raise BadInput("--member-id is for several models (a group job)")
        return labels or [""], [group_id]
    if labels and len(labels) != count:
        raise BadInput(f"give one --label per model: {count} models, {len(labels)} labels")
    ids = list(args.member_id or [f"{group_id}.{i}" for i in range(1, count + 1)])
    if len(ids) != count:
        raise BadInput(f"give one --member-id per model: {count} models, {len(ids)} ids")
    for value in ids:
        validate_or_new_id(value, "--member-id")
    return labels or [""] * count, ids


def group_job(
    job_id: str, shas: List[str], labels: List[str], ids: List[str], options: BenchOptions
) -> Job:
    """One job for one model, a group job (interleaved rounds) for several; validated."""
    try:
        if len(shas) == 1:
            return Job(id=job_id, model_sha256=shas[0], options=options, label=labels[0]).validate()
        members = [
            JobMember(id=i, model_sha256=s, label=label)
            for i, s, label in zip(ids, shas, labels)  # noqa: B905 (3.8)
        ]
        return Job.group(job_id, members, options).validate()
    except ProtocolError as exc:
        raise BadInput(str(exc)) from None


def new_job_id(prefix: str = "j") -> str:
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(3).hex()}"


def _result_outcome(text: str) -> Outcome:
    result = Result.from_json(text)
    return result.to_dict(), format_result(result), 0 if result_ok(result) else 1


# ---------------------------------------------------------------------- commands


def cmd_doctor(args: argparse.Namespace) -> Outcome:
    from .doctor import doctor_fatal, doctor_report  # probes and runtimes: only doctor needs them

    report = doctor_report(Spool(args.spool))
    return report, format_doctor(report), 1 if doctor_fatal(report) else 0


def cmd_admit(args: argparse.Namespace) -> Outcome:
    spool = Spool(args.spool).ensure()
    spool.clean_stale_parts()
    kind = "inputs" if args.kind.startswith("input") else "models"
    doc = spool.admit(args.file, args.sha256, kind)
    verb = "already present" if doc["already_present"] else "admitted"
    return doc, f"{verb}: {doc['path']}", 0


def cmd_part(args: argparse.Namespace) -> Outcome:
    spool = Spool(args.spool).ensure()
    spool.clean_stale_parts()
    doc = spool.claim_part(args.sha256, args.claim)
    return doc, f"{doc['path']}: {doc['length']} bytes, sha256 {doc['sha256']}", 0


def cmd_has(args: argparse.Namespace) -> Outcome:
    spool = Spool(args.spool).check()
    spool.clean_stale_parts()
    present: List[str] = []
    missing: List[str] = []
    for entry in args.sha256:
        if SHA256_PATTERN.match(entry):
            found = spool.has_model(entry)
        elif INPUTS_NAME_PATTERN.match(entry):
            found = spool.has_inputs(entry)
        else:
            raise BadInput(f"{entry!r} is not a sha256 (or '<sha256>.npz|.npy' for inputs)")
        (present if found else missing).append(entry)
    lines = [f"present {s}" for s in present] + [f"missing {s}" for s in missing]
    return {"present": present, "missing": missing}, "\n".join(lines), 0


def cmd_submit(args: argparse.Namespace) -> Outcome:
    if bool(args.model) == bool(args.sha256):
        raise BadInput(
            "give either a MODEL file or --sha256 of a model already in the spool (several of "
            "either for a group job)"
        )
    options = bench_options(args)
    job_id = validate_or_new_id(args.id)
    count = len(args.model or args.sha256)
    labels, ids = member_plan(args, job_id, count)
    spool = Spool(args.spool).ensure()
    shas: List[str] = []
    if args.model:
        for model in args.model:
            if not os.path.isfile(model):
                raise BadInput(f"{model} does not exist or is not a file")
        shas = [spool.import_model(model)[0] for model in args.model]
    else:
        for sha in args.sha256:
            if not SHA256_PATTERN.match(sha):
                raise BadInput(f"--sha256 {sha!r} is not a sha256 (64 lowercase hex digits)")
            if not spool.has_model(sha):
                raise BadInput(
                    f"model {sha} is not in {spool.root}/models/; upload it to incoming/ and "
                    "admit it"
                )
        shas = list(args.sha256)
    if args.inputs is not None:
        options.inputs = _spool_inputs(spool, args.inputs)
    job = group_job(job_id, shas, labels, ids, options)
    spool.queue(job)
    daemon = daemon_state(spool.root)
    note = "" if daemon["running"] else " (no daemon is serving this spool: run `serve`)"
    what = f"model {shas[0][:12]}" if len(shas) == 1 else f"{len(shas)} models (interleaved)"
    doc: Dict[str, Any] = {"job_id": job_id}
    if job.members:
        doc["members"] = job.member_ids()
    return doc, f"queued job {job_id} for {what}{note}\n{job_id}", 0


def _spool_inputs(spool: Spool, value: str) -> str:
    """--inputs: a '<sha256>.npz|.npy' already admitted, or a file to copy in."""
    if INPUTS_NAME_PATTERN.match(value) and os.path.isfile(spool.inputs_path(value)):
        return value
    if not os.path.isfile(value):
        raise BadInput(f"--inputs {value} does not exist (nor is it an admitted inputs name)")
    name, _ = spool.import_inputs(value)
    return name


def validate_or_new_id(value: Optional[str], name: str = "--id") -> str:
    """`value` checked as a job id (errors call it `name`: the flag, or the positional ID)."""
    if value is None:
        return new_job_id()
    try:
        return validate_job_id(value)
    except ProtocolError as exc:
        raise BadInput(str(exc).replace("job id", name, 1)) from None


def cmd_status(args: argparse.Namespace) -> Outcome:
    spool = Spool(args.spool).check()
    doc: Dict[str, Any] = {
        "queued": spool.list_ids("queued"),
        "running": spool.list_ids("running"),
        "results": spool.list_ids("results"),
        "daemon": daemon_state(spool.root),
    }
    from .progress import read_progress

    progress = {job: read_progress(spool.root, job) for job in doc["running"]}
    doc["progress"] = {job: value for job, value in progress.items() if value is not None}
    daemon = doc["daemon"]
    lines = [
        f"spool    {spool.root}",
        "daemon   " + (f"running (pid {daemon['pid']})" if daemon["running"] else "not running"),
        f"queued   {len(doc['queued'])}  " + " ".join(doc["queued"][:10]),
        f"running  {len(doc['running'])}  " + " ".join(doc["running"]),
        f"results  {len(doc['results'])}  " + " ".join(doc["results"][:10]),
    ]
    return doc, "\n".join(line.rstrip() for line in lines), 0


def cmd_result(args: argparse.Namespace) -> Outcome:
    spool = Spool(args.spool).check()
    validate_or_new_id(args.job_id, "job id")
    return _result_outcome(spool.read_result(args.job_id))


def cmd_wait(args: argparse.Namespace) -> Outcome:
    spool = Spool(args.spool).check()
    job_id = validate_or_new_id(args.job_id, "job id")
    if args.timeout is not None and args.timeout < 0:
        raise BadInput("--timeout must be >= 0 seconds")
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    warned = False
    delay = 0.05
    streaming = request_context.current() is not None
    last_progress: Optional[Dict[str, Any]] = None
    while True:
        state = spool.state_of(job_id)
        if streaming and state in ("running", "done"):  # a session streams the runner's progress
            from .progress import read_progress

            progress = read_progress(spool.root, job_id)
            if progress is not None and progress != last_progress:
                request_context.emit_progress(progress)
                last_progress = progress
            delay = min(delay, 0.25)
        if state in ("done", "acked"):
            return _result_outcome(spool.read_result(job_id))
        if state is None:
            raise NotFound(f"job {job_id} is not known to {spool.root}")
        if request_context.stop_requested():
            raise request_context.Interrupted(f"wait for job {job_id} interrupted (it is {state})")
        if not warned and not daemon_state(spool.root)["running"]:
            print(
                f"note: no daemon is serving {spool.root}; start `edgeprune-agent serve`",
                file=sys.stderr,
            )
            warned = True
        if deadline is not None and time.monotonic() >= deadline:
            raise NotFound(f"no result for job {job_id} after {args.timeout:g} s (it is {state})")
        pause = delay if deadline is None else min(delay, max(0.0, deadline - time.monotonic()))
        time.sleep(pause)
        delay = min(delay * 2, 1.0)


def cmd_ack(args: argparse.Namespace) -> Outcome:
    job_id = validate_or_new_id(args.job_id, "job id")
    Spool(args.spool).check().ack(job_id)
    return {"acked": job_id}, f"acknowledged {job_id}", 0


def cmd_cancel(args: argparse.Namespace) -> Outcome:
    from .cancel import cancel_jobs, describe

    ids = [validate_or_new_id(value, "job id") for value in args.job_id]
    if args.wait < 0:
        raise BadInput("--wait must be >= 0 seconds")
    records = cancel_jobs(Spool(args.spool).ensure(), ids, args.wait)
    return {"jobs": records}, "\n".join(describe(r) for r in records), 0


def cmd_run(args: argparse.Namespace) -> Outcome:
    for model in args.model:
        if not os.path.isfile(model):
            raise BadInput(f"{model} does not exist or is not a file")
    options = bench_options(args)
    job_id = validate_or_new_id(args.id) if args.id else new_job_id("run")
    labels, ids = member_plan(args, job_id, len(args.model))
    inputs_path = None
    if args.inputs is not None:
        if not os.path.isfile(args.inputs):
            raise BadInput(f"--inputs {args.inputs} does not exist or is not a file")
        if inputs_suffix(args.inputs) is None:
            raise BadInput(f"--inputs {args.inputs} is neither a .npy nor a .npz file")
        inputs_path = args.inputs
        options.inputs = sha256_file(inputs_path) + (inputs_suffix(inputs_path) or "")
    shas = [sha256_file(model) for model in args.model]
    group_job(job_id, shas, labels, ids, options)  # the same checks a queued job gets
    spool = Spool(args.spool)
    try:
        spool.ensure()
        locking = True
    except AgentError as exc:
        print(f"note: {exc}; benchmarking without the board lock", file=sys.stderr)
        locking = False

    from .bench import GroupMember, benchmark_group, benchmark_model

    def measure() -> Result:
        if len(args.model) > 1:
            members = [
                GroupMember(id=i, model_path=path, model_sha256=sha, label=label)
                for i, path, sha, label in zip(ids, args.model, shas, labels)  # noqa: B905
            ]
            return benchmark_group(job_id, members, options, inputs_path=inputs_path)
        return benchmark_model(
            args.model[0],
            options,
            job_id=job_id,
            model_sha256=shas[0],
            label=labels[0],
            inputs_path=inputs_path,
        )

    if locking:
        if bench_lock_busy(spool.root):
            print("note: waiting for the benchmark already running on this board", file=sys.stderr)
        with bench_lock(spool.root):
            result = measure()
    else:
        result = measure()
    return result.to_dict(), format_result(result), 0 if result_ok(result) else 1


def result_ok(result: Result) -> bool:
    """Exit 0 only if the job and, for a group, every member measured fine."""
    return result.status == "ok" and all(m.status == "ok" for m in result.members)


def cmd_serve(args: argparse.Namespace) -> Outcome:
    if args.poll <= 0:
        raise BadInput("--poll must be > 0 seconds")
    if args.write_retry < 0:
        raise BadInput("--write-retry must be >= 0 seconds")
    from .daemon import Daemon

    if request_context.current() is not None and not args.once:
        raise BadInput("inside a session, serve runs only with --once (the daemon has its own)")
    daemon = Daemon(
        Spool(args.spool),
        poll_s=args.poll,
        once=args.once,
        write_retry_s=args.write_retry,
        stop_check=request_context.stop_requested,
    )
    code = daemon.serve()
    return None, "", code


def cmd_session(args: argparse.Namespace) -> Outcome:
    if request_context.current() is not None:
        raise BadInput("a session cannot run inside a session")
    from .session import serve_stdio

    return None, "", serve_stdio(args.spool)


COMMANDS: Dict[str, Any] = {
    "doctor": cmd_doctor,
    "admit": cmd_admit,
    "has": cmd_has,
    "part": cmd_part,
    "submit": cmd_submit,
    "status": cmd_status,
    "wait": cmd_wait,
    "result": cmd_result,
    "ack": cmd_ack,
    "cancel": cmd_cancel,
    "run": cmd_run,
    "serve": cmd_serve,
    "session": cmd_session,
}
