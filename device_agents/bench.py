"""Benchmark one model for one job: checks first, then one fresh child process per thread count.

A group job (several models, `benchmark_group`) and a job with `precision` are measured in
rounds instead, by long-lived children (rounds.py).

The agent process never imports the runtime. It checks what it can cheaply (options, the
runtime is installed, the file is a TFLite flatbuffer, the CPUs exist), then runs
`bench_child` once per thread count with the job's remaining time as its timeout. A child
that hangs is killed with its whole process group; one that dies from a signal becomes an
error measurement; the agent carries on either way.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from . import __version__
from .integrity import sha256_file
from .probes import device_facts
from .probes.linux import cpu_features
from .progress import Report, no_report
from .protocol import (
    BenchOptions,
    LatencySummary,
    Measurement,
    ProtocolError,
    Result,
    Warning_,
    error_result,
)
from .rounds import MemberRun, RoundsChild, Watch, child_argv, measure_in_rounds
from .run_conditions import ThermalWatch, noise_warnings
from .runtimes import (
    RuntimeInfo,
    RuntimeNotAvailable,
    describe_runtime,
    installed_runtime,
    select_runtime,
)
from .sparse_support import sparse_path_support
from .tflite_file import ModelFacts, ModelFileError, inspect_model
from .zygote import ChildStarter

TICK_S = 0.5  # how often the agent looks up while a child runs (stop request, thermal sample)
STDERR_TAIL = 4000
# After one of these, the other thread counts would fail the same way: stop the job.
FATAL_KINDS = ("bad_model", "bad_inputs", "runtime_missing", "cpus_unavailable", "timeout")


class BenchInterrupted(Exception):
    """The agent was asked to stop (SIGTERM) while a child ran; the child has been killed."""


StopCheck = Callable[[], bool]


def never_stop() -> bool:
    return False


@dataclass
class GroupMember:
    """One model of a group job; `error_kind`/`error` set = it failed its checks, not run."""

    id: str
    model_path: str
    model_sha256: str
    label: str = ""
    error_kind: Optional[str] = None
    error: Optional[str] = None


class _Setup:
    """What every benchmark checks before any child starts, shared by single and group jobs."""

    def __init__(self, runtime: RuntimeInfo, allowed: Optional[set]) -> None:
        self.runtime = runtime
        self.support = sparse_path_support(
            runtime.name, runtime.version, platform.machine(), cpu_features()
        )
        self.allowed = allowed


def _setup(options: BenchOptions) -> Union[_Setup, Tuple[str, str, Dict[str, Any]]]:
    """The checks that hold for every model of a job; (kind, message, runtime) if one fails."""
    try:
        options.validate()
    except ProtocolError as exc:
        return "bad_job", str(exc), describe_runtime()
    try:
        runtime = select_runtime(options.runtime)
    except RuntimeNotAvailable as exc:
        return "runtime_missing", str(exc), describe_runtime(options.runtime)
    allowed = _allowed_cpus()
    if options.cpus and allowed is not None and not set(options.cpus) <= allowed:
        missing = sorted(set(options.cpus) - allowed)
        return (
            "cpus_unavailable",
            f"cpus {_cpus(missing)} are not available here; this agent may use {_cpus(sorted(allowed))}",
            runtime.to_dict(),
        )
    return _Setup(runtime, allowed)


def benchmark_model(
    model_path: str,
    options: BenchOptions,
    *,
    job_id: str,
    model_sha256: str,
    label: str = "",
    inputs_path: Optional[str] = None,
    should_stop: StopCheck = never_stop,
    report: Report = no_report,
) -> Result:
    """Measure `model_path` as `options` say; always returns a Result (status ok or error).

    With `options.precision` the model is measured in rounds (a group of one), so the
    median's interval can be checked as the runs come in.
    """
    started = time.time()

    failed = _job_failure(job_id, model_sha256, label, options, started)

    setup = _setup(options)
    if not isinstance(setup, _Setup):
        return failed(*setup)
    try:
        facts = inspect_model(model_path)
    except ModelFileError as exc:
        return failed("bad_model", f"model {model_sha256[:12]}: {exc}", setup.runtime.to_dict())
    device = device_facts()
    watch = ThermalWatch(options.cpus)
    watch.start()
    measurements: List[Measurement] = []
    deadline = time.monotonic() + options.timeout_s
    member = GroupMember(job_id, model_path, model_sha256, label)
    # a one-shot child per thread count needs no zygote; rounds renew processes
    starter = ChildStarter(
        job_id, setup.runtime.name, _child_env(), enabled=options.precision is not None
    )
    try:
        for step, threads in enumerate(options.threads):
            spec = _spec(member, threads, options, setup, inputs_path)
            if options.precision is not None:
                runs = [MemberRun(job_id, spec)]
                rounds_watch = _watch(deadline, options, watch, should_stop)
                (measurement,) = measure_in_rounds(
                    runs,
                    options,
                    rounds_watch,
                    _start_child(job_id, starter, rounds_watch),
                    report,
                )
            else:
                wanted = options.runs or 0
                total = len(options.threads) * wanted
                report("measuring", member=job_id, threads=threads, done=step * wanted, total=total)
                measurement = run_child(
                    spec,
                    deadline - time.monotonic(),
                    options.timeout_s,
                    job_id,
                    watch.tick,
                    should_stop,
                )
                done = (step + 1) * wanted  # this thread count's runs, counted once they ran
                report("measuring", member=job_id, threads=threads, done=done, total=total)
            measurements.append(measurement)
            if measurement.error_kind in FATAL_KINDS:
                break
    finally:
        starter.close()
        watch.stop()
    result = _model_result(
        member, facts, measurements, options, setup, device, watch.summary(), started
    )
    result.warnings.extend(_fallback_warning(starter))
    return result.validate()


def benchmark_group(
    group_id: str,
    members: List[GroupMember],
    options: BenchOptions,
    *,
    inputs_path: Optional[str] = None,
    should_stop: StopCheck = never_stop,
    report: Report = no_report,
) -> Result:
    """Measure several models in alternating rounds (see rounds.py); one Result per member
    inside the group's Result. A member that fails (its checks, a crash, a hang) gets its
    own error Result; the others are measured as if it had not been there."""
    started = time.time()
    first = members[0]

    failed = _job_failure(group_id, first.model_sha256, first.label, options, started)

    # the zygote imports the runtime while the options, models and device are checked
    runtime_name = installed_runtime(options.runtime)
    runnable_now = runtime_name is not None and any(m.error_kind is None for m in members)
    starter = ChildStarter(group_id, runtime_name or "", _child_env(), enabled=runnable_now)
    facts: Dict[str, ModelFacts] = {}
    try:
        setup = _setup(options)
        if not isinstance(setup, _Setup):
            starter.close()
            return failed(*setup)
        for member in members:
            if member.error_kind is None:
                try:
                    facts[member.id] = inspect_model(member.model_path)
                except ModelFileError as exc:
                    member.error_kind = "bad_model"
                    member.error = f"model {member.model_sha256[:12]}: {exc}"
        device = device_facts()
    except BaseException:
        starter.close()
        raise
    runnable = [m for m in members if m.error_kind is None]
    measured: Dict[str, List[Measurement]] = {m.id: [] for m in runnable}
    watch = ThermalWatch(options.cpus)
    watch.start()
    deadline = time.monotonic() + options.timeout_s
    try:
        for threads in options.threads:
            active = [
                m for m in runnable if not any(x.error_kind in FATAL_KINDS for x in measured[m.id])
            ]
            if not active:
                break
            runs = [MemberRun(m.id, _spec(m, threads, options, setup, inputs_path)) for m in active]
            rounds_watch = _watch(deadline, options, watch, should_stop)
            results = measure_in_rounds(
                runs, options, rounds_watch, _start_child(group_id, starter, rounds_watch), report
            )
            for member, measurement in zip(active, results):  # noqa: B905 (3.8)
                measured[member.id].append(measurement)
    finally:
        starter.close()
        watch.stop()
    conditions = watch.summary()
    member_results = []
    for member in members:
        if member.error_kind is not None:
            result = error_result(
                member.id,
                member.model_sha256,
                member.error or member.error_kind,
                error_kind=member.error_kind,
                label=member.label,
                agent_version=__version__,
                options=options,
                started_at=started,
                runtime=setup.runtime.to_dict(),
            )
        else:
            result = _model_result(
                member,
                facts[member.id],
                measured[member.id],
                options,
                setup,
                device,
                conditions,
                started,
            )
        result.group = group_id
        if member.error_kind is None:
            result.warnings.extend(_fallback_warning(starter))
        member_results.append(result)
    ran = [r for r in member_results if r.measurements]
    outer = Result(
        job_id=group_id,
        model_sha256=first.model_sha256,
        status="ok" if ran else "error",
        error=None
        if ran
        else f"none of the {len(members)} models could be measured; first: {member_results[0].error}",
        error_kind=None if ran else member_results[0].error_kind,
        label=first.label,
        agent_version=__version__,
        runtime=setup.runtime.to_dict(),
        options=options,
        device=device,
        thermal=conditions,
        started_at=started,
        finished_at=time.time(),
        members=member_results,
    )
    return outer.validate()


def _spec(
    member: GroupMember,
    threads: int,
    options: BenchOptions,
    setup: _Setup,
    inputs_path: Optional[str],
) -> Dict[str, Any]:
    return {
        "model_path": os.path.abspath(member.model_path),
        "runtime": setup.runtime.name,
        "threads": threads,
        "xnnpack": options.xnnpack,
        "warmup": options.warmup,
        "runs": options.runs,
        "min_seconds": options.min_seconds,
        "delay_ms": options.delay_ms,
        "cpus": options.cpus,
        "inputs_path": os.path.abspath(inputs_path) if inputs_path else None,
        "seed": options.seed,
    }


def _watch(
    deadline: float, options: BenchOptions, thermal: ThermalWatch, should_stop: StopCheck
) -> Watch:
    return Watch(deadline, options.timeout_s, thermal.tick, should_stop, BenchInterrupted, TICK_S)


def _start_child(
    job_id: str, starter: ChildStarter, watch: Watch
) -> Callable[[MemberRun], RoundsChild]:
    """Start a member's rounds child through the job's starter (forked from its zygote, or
    spawned), and note how it was started."""

    def start(member: MemberRun) -> RoundsChild:
        child = RoundsChild(
            child_argv(job_id, member.member_id),
            starter.env,
            lambda argv: starter.start(argv, watch),
        )
        member.start_modes.append(starter.mode)
        return child

    return start


def _fallback_warning(starter: ChildStarter) -> List[Warning_]:
    """Said in the result when a wanted fork server could not be used."""
    if starter.failure is None:
        return []
    return [
        Warning_(
            "fork_server_unavailable",
            f"each benchmark process was started as a new Python ({starter.failure}): "
            "correct, but each one paid the runtime's import",
        )
    ]


def _model_result(
    member: GroupMember,
    facts: ModelFacts,
    measurements: List[Measurement],
    options: BenchOptions,
    setup: _Setup,
    device: Dict[str, Any],
    conditions: Dict[str, Any],
    started: float,
) -> Result:
    """One model's Result, with the warnings about its own measurements and file."""
    allowed = setup.allowed
    cap = len(options.cpus) if options.cpus else (len(allowed) if allowed else os.cpu_count())
    warnings = noise_warnings(conditions, measurements, cap)
    warnings.extend(runtime_warnings(setup.runtime, facts, setup.support, options))
    failures = [m for m in measurements if m.status != "ok"]
    status = "ok" if not failures and len(measurements) == len(options.threads) else "error"
    failure = failures[0] if failures else None
    error = f"threads={failure.threads}: {failure.error}" if failure else None
    if status == "error" and failure is None:
        error = "not every thread count was measured"
    support = setup.support
    return Result(
        job_id=member.id,
        model_sha256=member.model_sha256,
        status=status,
        error=error,
        error_kind=failure.error_kind if failure else None,
        label=member.label,
        agent_version=__version__,
        runtime=setup.runtime.to_dict(),
        sparse_path=dict(
            support,
            model_is_sparse=facts.is_sparse,
            xnnpack=options.xnnpack,
            expected=bool(support["capable"] and options.xnnpack and facts.is_sparse),
        ),
        options=options,
        measurements=measurements,
        device=device,
        thermal=conditions,
        warnings=warnings,
        started_at=started,
        finished_at=time.time(),
    )


def _job_failure(
    job_id: str, model_sha256: str, label: str, options: BenchOptions, started: float
) -> Callable[[str, str, Dict[str, Any]], Result]:
    """failed(kind, message, runtime): the error Result of a job that could not start."""

    def failed(kind: str, message: str, runtime: Dict[str, Any]) -> Result:
        return error_result(
            job_id,
            model_sha256,
            message,
            error_kind=kind,
            label=label,
            agent_version=__version__,
            options=options,
            started_at=started,
            runtime=runtime,
        )

    return failed


def runtime_warnings(
    runtime: RuntimeInfo, facts: ModelFacts, support: Dict[str, Any], options: BenchOptions
) -> List[Warning_]:
    found = []
    if facts.is_sparse and options.xnnpack and not support["capable"]:
        fix = f"; to get it: {support['fix']}" if support.get("fix") else ""
        found.append(
            Warning_(
                "sparse_path_unavailable",
                f"the model stores sparse weights (DENSIFY ops) but this board will not take "
                f"XNNPACK's sparse path: {support['reason']}{fix}",
            )
        )
    if facts.is_sparse and not options.xnnpack:
        found.append(
            Warning_(
                "sparse_path_unavailable",
                "the model stores sparse weights but XNNPACK is off (--no-xnnpack): it runs dense",
            )
        )
    if runtime.name == "tflite_runtime" and facts.is_quantized and options.xnnpack:
        found.append(
            Warning_(
                "int8_without_xnnpack",
                f"tflite-runtime {runtime.version} runs quantized ops with its built-in kernels, "
                "not XNNPACK; install ai-edge-litert (pip install ai-edge-litert) to measure "
                "XNNPACK int8",
            )
        )
    if facts.has_int16_activations and options.xnnpack:
        found.append(
            Warning_(
                "int16x8_without_xnnpack",
                "the model has 16-bit activations (int16x8): XNNPACK has no int16x8 kernels, "
                "so its ops ran on TFLite's built-in reference kernels, not XNNPACK",
            )
        )
    return found


def run_child(
    spec: Dict[str, Any],
    budget_s: float,
    timeout_s: float,
    job_id: str,
    tick: Callable[[], None],
    should_stop: StopCheck,
) -> Measurement:
    """One measurement in a fresh `bench_child` process, killed if it outlives `budget_s`."""
    threads, xnnpack = spec["threads"], spec["xnnpack"]

    def failed(kind: str, message: str) -> Measurement:
        return Measurement(
            threads=threads, xnnpack=xnnpack, status="error", error=message, error_kind=kind
        )

    if budget_s <= 0:
        return failed("timeout", f"not started: the job's timeout ({timeout_s:g} s) ran out")
    argv = child_argv(job_id)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=_child_env(),
            cwd="/",
        )
    except OSError as exc:
        return failed("runtime_error", f"cannot start the benchmark process: {exc.strerror or exc}")
    payload: Optional[bytes] = json.dumps(spec).encode()
    deadline = time.monotonic() + budget_s
    timed_out = False
    while True:
        wait_s = max(0.0, min(TICK_S, deadline - time.monotonic()))
        try:
            out, err = proc.communicate(input=payload, timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            payload = None
            if should_stop():
                _kill_group(proc)
                proc.communicate()
                raise BenchInterrupted() from None
            if time.monotonic() >= deadline:
                timed_out = True
                _kill_group(proc)
                out, err = proc.communicate()
                break
            tick()
        except BaseException:
            _kill_group(proc)
            proc.communicate()
            raise
    if timed_out:
        return failed(
            "timeout",
            f"timed out after the job's {timeout_s:g} s (timeout_s) and was killed",
        )
    tail = _last_line(err)
    if proc.returncode < 0:
        name = _signal_name(-proc.returncode)
        if should_stop():
            raise BenchInterrupted()
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return failed(
            "crashed",
            f"the benchmark process died from {name}{hint}: the runtime cannot run this model"
            + (f"; last message: {tail}" if tail else ""),
        )
    try:
        raw = json.loads(out.decode("utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("not an object")
    except ValueError:
        return failed(
            "runtime_error",
            f"the benchmark process exited with code {proc.returncode} without a result"
            + (f": {tail}" if tail else ""),
        )
    return _measurement(raw, threads, xnnpack)


def _measurement(raw: Dict[str, Any], threads: int, xnnpack: bool) -> Measurement:
    summary = raw.get("summary")
    return Measurement(
        threads=threads,
        xnnpack=xnnpack,
        status=raw.get("status", "error"),
        error=raw.get("error"),
        error_kind=raw.get("error_kind"),
        import_ms=raw.get("import_ms"),
        load_ms=raw.get("load_ms"),
        init_ms=raw.get("init_ms"),
        first_invoke_ms=raw.get("first_invoke_ms"),
        latencies_ms=raw.get("latencies_ms") or [],
        summary=LatencySummary(**summary) if summary else None,
        rss_before_model_kb=raw.get("rss_before_model_kb"),
        peak_rss_kb=raw.get("peak_rss_kb"),
        outputs=raw.get("outputs"),
        cpu_affinity=raw.get("cpu_affinity"),
    )


def _child_env() -> Dict[str, str]:
    """The child must import this same copy of device_agents, wherever it was installed."""
    env = dict(os.environ)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = package_parent + (os.pathsep + existing if existing else "")
    return env


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _last_line(data: bytes) -> str:
    lines = [
        line.strip()
        for line in data[-STDERR_TAIL:].decode("utf-8", "replace").splitlines()
        if line.strip() and not line.startswith("INFO:")
    ]
    return lines[-1][:300] if lines else ""


def _allowed_cpus() -> Optional[set]:
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return None


def _cpus(cpus: List[int]) -> str:
    return ",".join(str(c) for c in cpus)


def verify_model(path: str, expected_sha256: str) -> Optional[str]:
    """None if the file's sha256 is `expected_sha256`, else the actual hash."""
    actual = sha256_file(path)
    return None if actual == expected_sha256 else actual
