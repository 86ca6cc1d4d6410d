"""Benchmark one model for one job: checks first, then one fresh child process per thread count.

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
import sys
import time
from typing import Any, Callable, Dict, List, Optional

from . import __version__
from .integrity import sha256_file
from .probes import device_facts
from .probes.linux import cpu_features
from .protocol import (
    BenchOptions,
    LatencySummary,
    Measurement,
    ProtocolError,
    Result,
    Warning_,
    error_result,
)
from .run_conditions import ThermalWatch, noise_warnings
from .runtimes import RuntimeInfo, RuntimeNotAvailable, describe_runtime, select_runtime
from .sparse_support import sparse_path_support
from .tflite_file import ModelFacts, ModelFileError, inspect_model

TICK_S = 0.5  # how often the agent looks up while a child runs (stop request, thermal sample)
STDERR_TAIL = 4000
# After one of these, the other thread counts would fail the same way: stop the job.
FATAL_KINDS = ("bad_model", "bad_inputs", "runtime_missing", "cpus_unavailable", "timeout")


class BenchInterrupted(Exception):
    """The agent was asked to stop (SIGTERM) while a child ran; the child has been killed."""


StopCheck = Callable[[], bool]


def never_stop() -> bool:
    return False


def benchmark_model(
    model_path: str,
    options: BenchOptions,
    *,
    job_id: str,
    model_sha256: str,
    label: str = "",
    inputs_path: Optional[str] = None,
    should_stop: StopCheck = never_stop,
) -> Result:
    """Measure `model_path` as `options` say; always returns a Result (status ok or error)."""
    started = time.time()

    def failed(kind: str, message: str, **extra: Any) -> Result:
        extra.setdefault("runtime", describe_runtime())
        return error_result(
            job_id,
            model_sha256,
            message,
            error_kind=kind,
            label=label,
            agent_version=__version__,
            options=options,
            started_at=started,
            **extra,
        )

    try:
        options.validate()
    except ProtocolError as exc:
        return failed("bad_job", str(exc))
    try:
        runtime = select_runtime(options.runtime)
    except RuntimeNotAvailable as exc:
        return failed("runtime_missing", str(exc), runtime=describe_runtime(options.runtime))
    support = sparse_path_support(runtime.name, runtime.version, platform.machine(), cpu_features())
    try:
        facts = inspect_model(model_path)
    except ModelFileError as exc:
        return failed("bad_model", f"model {model_sha256[:12]}: {exc}", runtime=runtime.to_dict())
    allowed = _allowed_cpus()
    if options.cpus and allowed is not None and not set(options.cpus) <= allowed:
        missing = sorted(set(options.cpus) - allowed)
        return failed(
            "cpus_unavailable",
            f"cpus {_cpus(missing)} are not available here; this agent may use {_cpus(sorted(allowed))}",
            runtime=runtime.to_dict(),
        )
    device = device_facts()
    watch = ThermalWatch(options.cpus)
    watch.start()
    measurements: List[Measurement] = []
    deadline = time.monotonic() + options.timeout_s
    try:
        for threads in options.threads:
            spec = {
                "model_path": os.path.abspath(model_path),
                "runtime": runtime.name,
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
            measurement = run_child(
                spec,
                deadline - time.monotonic(),
                options.timeout_s,
                job_id,
                watch.tick,
                should_stop,
            )
            measurements.append(measurement)
            if measurement.error_kind in FATAL_KINDS:
                break
    finally:
        watch.stop()
    conditions = watch.summary()
    cap = len(options.cpus) if options.cpus else (len(allowed) if allowed else os.cpu_count())
    warnings = noise_warnings(conditions, measurements, cap)
    warnings.extend(runtime_warnings(runtime, facts, support, options))
    failures = [m for m in measurements if m.status != "ok"]
    status = "ok" if not failures and len(measurements) == len(options.threads) else "error"
    first = failures[0] if failures else None
    return Result(
        job_id=job_id,
        model_sha256=model_sha256,
        status=status,
        error=f"threads={first.threads}: {first.error}" if first else None,
        error_kind=first.error_kind if first else None,
        label=label,
        agent_version=__version__,
        runtime=runtime.to_dict(),
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
    ).validate()


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
    argv = [
        sys.executable,
        "-m",
        "device_agents.bench_child",
        "--parent",
        str(os.getpid()),
        "--job",
        job_id,
    ]
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
