"""`bench` across devices: deploy what is missing, queue the models, get the results home.

Per device: deploy → submit → (a running daemon measures; otherwise `serve --once` drains
the queue in the foreground) → fetch each result → hand it to `on_result` → `ack` it. With
`interleave` (the default) and two or more models, they go as one group job the agent
measures in alternating rounds, so drift on the board lands on every model alike; its
member results are handed over one by one and the group acknowledged once all are kept.
Without it, one job per model runs back to back. A result is acknowledged only after
`on_result` returned (the caller stores it there), so a crash in between loses nothing (the
next fetch hands over the same result again, which the results store ignores); where
results go is the caller's business (`workflows.bench`).
While the board measures, `wait` blocks inside the agent, in slices growing to a minute; a
dropped link is reconnected and the results (kept in the spool until acknowledged) are
asked for again.

In an agent session (agent_session.py) `serve --once` runs beside the
waits, which stream the board's job progress (runs done of total, per member) to `step`.

Interrupts (fleet/cancel.py): each job is registered with the command's cancel token before
it is submitted and dropped once acknowledged; the token is checked between steps and wait
slices, and nothing is stored once it is set. Jobs of an earlier command ahead of ours in the
device's queue (an interrupted bench's, or one the agent re-queued after its own crash) are
said once per device: the board finishes them first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device_agents.protocol import MAX_MEMBERS, BenchOptions, Result, error_result
from edgeprune.errors import DeviceError, UserError
from edgeprune.files import check_input_path
from edgeprune.fleet.agent_client import AgentClient, AgentError, GroupMember
from edgeprune.fleet.artifacts import LocalModel, cached_sha256
from edgeprune.fleet.cancel import CancelToken, SubmittedJob, active_token, interrupt_cancels
from edgeprune.fleet.deploy import DeployedFile, DeployProgress, deploy_to_session, send_file
from edgeprune.fleet.fanout import GroupResult
from edgeprune.fleet.inventory import Device
from edgeprune.fleet.retry import backoff
from edgeprune.fleet.session import ConnectOptions, DeviceSession, each_session
from edgeprune.fleet.transport import ConnectionLost

StepProgress = Callable[[str, str, int, int], None]
"""step(device_name, what, done, total): e.g. ("pi4", "measuring", 1, 3)."""

ResultSink = Callable[[str, LocalModel, Result], None]
"""on_result(device_name, model, result): keep one result; it is acknowledged after this returns."""


@dataclass
class BenchInputs:
    """An .npz/.npy the device runs instead of random data; labels (`y`) give accuracy."""

    path: Path
    sha256: str
    suffix: str
    labels: Any | None = None  # numpy array of class ids, or None

    @classmethod
    def load(cls, path: str) -> BenchInputs:
        resolved = check_input_path(path, "inputs file")
        suffix = resolved.suffix.lower().lstrip(".")
        if suffix not in ("npz", "npy"):
            raise UserError(f"inputs file {path!r} must be a .npz or .npy")
        import numpy as np  # host side only; the CLI stays fast without --inputs

        labels = None
        try:
            loaded = np.load(resolved, allow_pickle=False)
            if suffix == "npz":
                with loaded:
                    if "y" in loaded.files:
                        y = np.asarray(loaded["y"])
                        labels = y.argmax(axis=1) if y.ndim == 2 else y.reshape(-1)
        except (OSError, ValueError, EOFError) as exc:
            raise UserError(f"inputs file {path!r} cannot be read as .{suffix}: {exc}") from None
        return cls(resolved, cached_sha256(resolved), suffix, labels)


@dataclass
class DeviceBench:
    """One device's part of a bench run."""

    device: str
    deployed: list[DeployedFile] = field(default_factory=list)
    results: list[tuple[LocalModel, Result]] = field(default_factory=list)
    daemon_running: bool = False
    measured_once: bool = False

    @property
    def errors(self) -> list[str]:
        return [f"{m.name}: {r.error}" for m, r in self.results if r.status != "ok"]


MAX_GROUP_MEMBERS = min(8, MAX_MEMBERS)
"""The host puts at most this many models in one group job (more: several groups of about
equal size). Every member keeps a live runtime process on the board while the group runs,
so a board's memory, not the protocol's limit of 32, bounds it."""


@dataclass
class QueuedJob:
    """A job on the device: one model (no `member_ids`) or a group of them, one member id each."""

    job_id: str
    models: list[LocalModel]
    member_ids: list[str] = field(default_factory=list)

    @property
    def what(self) -> str:
        """The job's models for a message: "model a.tflite" or "models a.tflite, b.tflite"."""
        names = [model.name for model in self.models]
        return ("model " if len(names) == 1 else "models ") + ", ".join(names)

    @property
    def weight(self) -> int:
        """How many models' time the job takes (what its wait budget allows for)."""
        return len(self.models)

    def results(self, outer: Result) -> list[tuple[LocalModel, Result]]:
        """Each model with its own Result: the job's, or its member's in a group.

        A group that could not run (or a member the agent left out) gives those models an
        error Result carrying the group's error, so every model is accounted for.
        """
        if not self.member_ids:
            return [(self.models[0], outer)]
        by_id = {member.job_id: member for member in outer.members}
        paired = []
        for model, member_id in zip(self.models, self.member_ids, strict=True):
            member = by_id.get(member_id)
            if member is None:
                why = outer.error if outer.status != "ok" else "the agent returned no result"
                member = error_result(
                    member_id,
                    model.sha256,
                    f"group job {self.job_id}: {why or 'failed'}",
                    label=model.name[:200],
                    options=outer.options,
                    device=outer.device,
                    runtime=outer.runtime,
                    agent_version=outer.agent_version,
                    error_kind=outer.error_kind,
                    group=self.job_id,
                )
            paired.append((model, member))
        return paired


def new_job_id() -> str:
    return f"ep-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{secrets.token_hex(4)}"


def plan_jobs(models: list[LocalModel], interleave: bool) -> list[QueuedJob]:
    """One job per model, or (interleaved) groups of up to MAX_GROUP_MEMBERS models each, of
    about equal size (9 models: 5 + 4, never 8 + a lone 1). Member ids are fresh job ids."""
    if not interleave or len(models) < 2:
        return [QueuedJob(new_job_id(), [model]) for model in models]
    count = -(-len(models) // MAX_GROUP_MEMBERS)
    size, extra = divmod(len(models), count)
    chunks, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        chunks.append(models[start:end])
        start = end
    return [
        QueuedJob(new_job_id(), chunk, [new_job_id() for _ in chunk])
        if len(chunk) >= 2
        else QueuedJob(new_job_id(), chunk)
        for chunk in chunks
    ]


def submit_job(
    agent: AgentClient, job: QueuedJob, options: BenchOptions, inputs: str | None
) -> None:
    """Queue `job` on the device (a group job when it has members)."""
    if not job.member_ids:
        model = job.models[0]
        agent.submit(
            model.sha256, options, job_id=job.job_id, label=model.name[:200], inputs=inputs
        )
        return
    members = [
        GroupMember(member_id, model.sha256, model.name[:200])
        for model, member_id in zip(job.models, job.member_ids, strict=True)
    ]
    agent.submit_group(
        members, group_options(options, len(members)), job_id=job.job_id, inputs=inputs
    )


def group_options(options: BenchOptions, members: int) -> BenchOptions:
    """The group's options: `timeout_s` is per model, so a group of N gets N times it (the
    agent bounds a whole job by its timeout), within the protocol's limit."""
    limit = 7 * 86400.0
    return dataclasses.replace(options, timeout_s=min(limit, options.timeout_s * members))


def device_accuracy(result: Result, labels: Any | None) -> float | None:
    """Share of samples whose on-device top-1 equals the label (first measurement with outputs)."""
    if labels is None:
        return None
    for measurement in result.measurements:
        top1 = (measurement.outputs or {}).get("top1")
        if isinstance(top1, list) and top1 and len(top1) == len(labels):
            hits = sum(int(a) == int(b) for a, b in zip(top1, labels.tolist(), strict=True))
            return hits / len(top1)
    return None


def bench_on_session(
    session: DeviceSession,
    models: list[LocalModel],
    options: BenchOptions,
    *,
    on_result: ResultSink,
    inputs: BenchInputs | None = None,
    deploy_progress: DeployProgress | None = None,
    step: StepProgress | None = None,
    interleave: bool = True,
) -> DeviceBench:
    """The whole bench loop on one open device (`interleave`: see the module's docstring)."""
    name = session.device.name
    agent = session.agent
    outcome = DeviceBench(device=name)
    token = active_token()

    def tell(what: str, done: int) -> None:
        if step:
            step(name, what, done, len(models))

    def runs(what: str, done: int, total: int) -> None:  # the board's job progress
        if step:
            step(name, what, done, total)

    token.check()
    tell("deploying", 0)
    outcome.deployed = deploy_to_session(session, models, deploy_progress)
    token.check()
    inputs_ref = None
    if inputs is not None:
        inputs_ref = f"{inputs.sha256}.{inputs.suffix}"  # the agent's name for admitted inputs
        if inputs_ref not in agent.has([inputs_ref]):
            send_file(session, inputs.path, inputs.sha256, kind="inputs", label=inputs.path.name)
    jobs = plan_jobs(models, interleave)
    for job in jobs:
        token.check()
        token.submitted(
            SubmittedJob(session.device, agent.python, agent.spool, job.job_id, job.what)
        )
        submit_job(agent, job, options, inputs_ref)
    tell("queued", 0)
    attempt = 0
    while True:  # the results wait in the spool: after a dropped link, reconnect and ask again
        try:
            fetched = _measure(session, jobs, options, outcome, tell, runs)
            break
        except ConnectionLost:
            attempt += 1
            if attempt > session.device.retries:
                raise
            token.sleep(backoff(attempt))
            with contextlib.suppress(ConnectionLost):
                session.transport.reconnect()
    stored = 0
    for job, result in fetched:
        token.check()  # interrupted: store nothing more (the job is cancelled instead)
        for model, own in job.results(result):
            on_result(name, model, own)
            outcome.results.append((model, own))
            stored += 1
            tell("stored", stored)
        agent.ack(job.job_id)  # a group's members go with it: only once all are kept
        token.finished(name, job.job_id)
    return outcome


def _measure(
    session: DeviceSession,
    jobs: list[QueuedJob],
    options: BenchOptions,
    outcome: DeviceBench,
    tell: Callable[[str, int], None],
    runs: Callable[[str, int, int], None],
) -> list[tuple[QueuedJob, Result]]:
    """Have the device run the queued jobs and return their results.

    With no agent serving the spool, `serve --once` drains the queue in the foreground;
    otherwise (a daemon, another bench command's `serve --once`, or one left running by a
    dropped link) `wait` blocks on the board. Waits are cut in slices so that an agent
    that exits before reaching our jobs is noticed and the queue drained here instead.
    Budgets count a group job as its members' worth of jobs.
    """
    agent = session.agent
    per_job = options.timeout_s + 60
    total = sum(job.weight for job in jobs)
    serve_timeout = per_job * total + 120
    status = agent.status()
    running = bool((status.get("daemon") or {}).get("running"))
    _note_earlier_jobs(session.device.name, status, jobs, active_token())
    if not outcome.measured_once:
        outcome.daemon_running = running
        outcome.measured_once = True
    serving: threading.Thread | None = None
    if not running:
        tell("measuring (serve --once)", 0)
        if agent.session() is not None:  # drain beside the waits, which stream progress
            serving = threading.Thread(
                target=_serve_quietly, args=(agent, serve_timeout), daemon=True
            )
            serving.start()
        else:
            _serve_once(agent, serve_timeout)
    fetched = []
    done = 0
    for job in jobs:
        tell("measuring", done)
        # the board may be busy with other jobs first: allow for all of ours
        budget = per_job * (total - done)
        progress = job_progress(job, runs)
        fetched.append((job, _await_result(session, job.job_id, budget, serve_timeout, progress)))
        done += job.weight
    return fetched  # a `serving` still draining other commands' jobs goes on by itself


def _serve_quietly(agent: AgentClient, timeout: float) -> None:
    """`serve --once` in the session, beside the waits; a failure shows in them (the wait
    loop drains the queue itself when nobody serves)."""
    with contextlib.suppress(DeviceError):
        _serve_once(agent, timeout)


def job_progress(
    job: QueuedJob, runs: Callable[[str, int, int], None]
) -> Callable[[dict[str, Any]], None]:
    """What a session's `wait` streams, as `runs(what, done, total)`: e.g. ("measuring
    a.tflite", 40, 200), runs done of all the job's runs (a group's: all its members')."""
    names = dict(zip(job.member_ids or [job.job_id], [m.name for m in job.models], strict=True))

    def show(progress: dict[str, Any]) -> None:
        member = names.get(str(progress.get("member")), "")
        phase = str(progress.get("phase") or "measuring")
        done, total = progress.get("done"), progress.get("total")
        if isinstance(done, int) and isinstance(total, int) and total > 0:
            runs(f"{phase} {member}".strip(), done, total)

    return show


def _note_earlier_jobs(
    device: str, status: dict[str, Any], jobs: list[QueuedJob], token: CancelToken
) -> None:
    """Say (once per device) which jobs of an earlier command the board runs before ours."""
    ours = token.own_job_ids(device) | {job.job_id for job in jobs}
    queued = [str(j) for j in status.get("queued") or []]
    ahead = queued[: min((queued.index(j) for j in ours if j in queued), default=len(queued))]
    earlier = [str(j) for j in status.get("running") or [] if j not in ours]
    earlier += [j for j in ahead if j not in ours]
    if earlier:
        listed = ", ".join(earlier[:3]) + (
            f" and {len(earlier) - 3} more" if len(earlier) > 3 else ""
        )
        noun = "job" if len(earlier) == 1 else "jobs"
        token.note_once(
            f"earlier-jobs:{device}",
            f"{device}: finishing {noun} {listed} from an earlier command first",
        )


WAIT_SLICES_S = (5.0, 10.0, 20.0, 40.0, 60.0)


def _await_result(
    session: DeviceSession,
    job_id: str,
    budget: float,
    serve_timeout: float,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> Result:
    """`wait` for one job in growing slices; between slices, drain the queue if nobody serves."""
    agent = session.agent
    token = active_token()
    deadline = time.monotonic() + budget
    slices = iter(WAIT_SLICES_S)
    while True:
        token.check()
        left = deadline - time.monotonic()
        slice_s = next(slices, WAIT_SLICES_S[-1])
        result = agent.wait(
            job_id, timeout=max(0.0, min(slice_s, left)), pending_ok=True, on_progress=on_progress
        )
        if result is not None:
            return result
        if left <= slice_s:
            raise DeviceError(
                f"device {session.device.name}: no result for job {job_id} after {budget:g} s; "
                "it stays queued on the board (see edgeprune-agent status there)"
            )
        if not _agent_serving(agent):
            _serve_once(agent, serve_timeout)


def _agent_serving(agent: AgentClient) -> bool:
    return bool((agent.status().get("daemon") or {}).get("running"))


def _serve_once(agent: AgentClient, timeout: float) -> None:
    """Drain the queue here, unless another agent got the spool's lock first (then it will).

    The agent that refused us may itself be gone by the time we ask again (a daemon killed
    and restarted); that is no error either: the wait loop notices nobody serves and drains
    the queue then.
    """
    try:
        agent.serve_once(timeout=timeout)
    except AgentError as exc:
        if "already serves" in str(exc) or _agent_serving(agent):
            return
        raise


def run_bench(
    devices: list[Device],
    models: list[LocalModel],
    options: BenchOptions,
    *,
    on_result: ResultSink,
    inputs: BenchInputs | None = None,
    parallel: int | None = None,
    connect: ConnectOptions | None = None,
    deploy_progress: DeployProgress | None = None,
    step: StepProgress | None = None,
    interleave: bool = True,
) -> GroupResult[DeviceBench]:
    """Bench every model on every device (devices in parallel); each result goes to `on_result`.

    `on_result` is called from the devices' threads, one call at a time per device.
    Interrupted (SIGINT/SIGTERM, KeyboardInterrupt), it cancels the jobs it submitted on the
    devices, says so per job and raises `fleet.cancel.Interrupted` (fleet/cancel.py).
    """
    options.validate()

    def work(session: DeviceSession) -> DeviceBench:
        return bench_on_session(
            session,
            models,
            options,
            on_result=on_result,
            inputs=inputs,
            deploy_progress=deploy_progress,
            step=step,
            interleave=interleave,
        )

    with interrupt_cancels():
        return each_session(devices, work, connect=connect, parallel=parallel)
