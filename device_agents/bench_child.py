"""The process that measures one model at one thread count, then exits.

Run as ``python -m device_agents.bench_child --parent PID`` by `bench.py`, with the spec as
JSON on stdin. It writes one JSON object (a `protocol.Measurement`) to the stdout it was
given; everything else, including what native runtime code prints, goes to stderr. A fresh
process per measurement means its peak RSS belongs to this model alone, and a runtime that
segfaults or hangs takes down only this process.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sys
import time
from typing import Any, Dict, List, Optional

MAX_TIMED_RUNS = 1_000_000
PR_SET_PDEATHSIG = 1


class BenchFailure(Exception):
    """A failure with a protocol error kind (bad_model, bad_inputs, ...)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL us when the agent dies (kill -9 of the daemon leaves no orphan)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _status_kb(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    if field == "VmHWM":
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return None


def _ms(seconds: float) -> float:
    return seconds * 1000.0


def measure(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Load, initialise, warm up and time the model as `spec` says; return a Measurement dict."""
    from . import inputs, runtimes
    from .protocol import LatencySummary

    cpus = spec.get("cpus")
    if cpus:
        try:
            os.sched_setaffinity(0, cpus)
        except (OSError, ValueError) as exc:
            raise BenchFailure("cpus_unavailable", f"cannot run on CPUs {cpus}: {exc}") from None
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None

    start = time.perf_counter()
    try:
        interpreter_cls, resolver_enum = runtimes.interpreter_api(spec["runtime"])
    except ImportError as exc:
        raise BenchFailure(
            "runtime_missing", f"runtime {spec['runtime']} cannot be imported: {exc}"
        ) from None
    import_ms = _ms(time.perf_counter() - start)
    rss_before_model = _status_kb("VmRSS")

    start = time.perf_counter()
    with open(spec["model_path"], "rb") as handle:
        content = handle.read()
    load_ms = _ms(time.perf_counter() - start)

    start = time.perf_counter()
    try:
        interpreter = runtimes.create_interpreter(
            interpreter_cls, resolver_enum, content, spec["threads"], spec["xnnpack"]
        )
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise BenchFailure("bad_model", f"the runtime rejected the model: {_line(exc)}") from None
    init_ms = _ms(time.perf_counter() - start)

    input_details = interpreter.get_input_details()
    output_details = interpreter.get_output_details()
    try:
        if spec.get("inputs_path"):
            samples = inputs.load_samples(spec["inputs_path"], input_details)
            recorder = inputs.OutputRecorder("inputs")
        else:
            samples = [inputs.random_sample(input_details, spec["seed"])]
            recorder = inputs.OutputRecorder("random")
    except inputs.InputsError as exc:
        raise BenchFailure("bad_inputs", str(exc)) from None

    def feed(sample: List[Any]) -> None:
        for detail, array in zip(input_details, sample):  # noqa: B905 (3.8)
            interpreter.set_tensor(detail["index"], array)

    try:
        feed(samples[0])
        start = time.perf_counter()
        interpreter.invoke()
        first_invoke_ms = _ms(time.perf_counter() - start)
        for i in range(spec["warmup"]):
            if len(samples) > 1:
                feed(samples[i % len(samples)])
            interpreter.invoke()
        gc.collect()  # start the timed runs with nothing for the collector to do
        latencies = _timed_runs(interpreter, samples, feed, spec)
        for sample in samples:
            feed(sample)
            interpreter.invoke()
            recorder.add([interpreter.get_tensor(d["index"]) for d in output_details])
    except (ValueError, RuntimeError) as exc:
        raise BenchFailure("runtime_error", f"invoke() failed: {_line(exc)}") from None

    latencies_ms = [_ms(x) for x in latencies]
    return {
        "threads": spec["threads"],
        "xnnpack": spec["xnnpack"],
        "status": "ok",
        "import_ms": import_ms,
        "load_ms": load_ms,
        "init_ms": init_ms,
        "first_invoke_ms": first_invoke_ms,
        "latencies_ms": latencies_ms,
        "summary": LatencySummary.of(latencies_ms).__dict__,
        "rss_before_model_kb": rss_before_model,
        "peak_rss_kb": _status_kb("VmHWM"),
        "outputs": recorder.to_dict(),
        "cpu_affinity": affinity,
    }


def _timed_runs(
    interpreter: Any, samples: List[Any], feed: Any, spec: Dict[str, Any]
) -> List[float]:
    """Each run's invoke() alone, in seconds. GC is off so a collection never lands in a run."""
    runs = spec.get("runs")
    min_seconds = spec.get("min_seconds")
    delay_s = (spec.get("delay_ms") or 0.0) / 1000.0
    invoke = interpreter.invoke
    clock = time.perf_counter
    latencies: List[float] = []
    record = latencies.append
    gc.disable()
    try:
        if runs is not None and min_seconds is None and len(samples) == 1 and delay_s == 0:
            for _ in range(runs):  # the plain case: nothing but the clock around invoke()
                begin = clock()
                invoke()
                record(clock() - begin)
            return latencies
        wanted = runs or 1
        loop_start = clock()
        count = 0
        while count < MAX_TIMED_RUNS:
            if count >= wanted and (min_seconds is None or clock() - loop_start >= min_seconds):
                break
            if len(samples) > 1:
                feed(samples[count % len(samples)])
            begin = clock()
            invoke()
            record(clock() - begin)
            count += 1
            if delay_s:
                time.sleep(delay_s)
        return latencies
    finally:
        gc.enable()


def _line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())[:300]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m device_agents.bench_child")
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--job", default="", help="job id, only to tell processes apart")
    args = parser.parse_args(argv)
    result_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints (ours or native code's) must not corrupt the result
    _die_with_parent(args.parent)
    measurement: Dict[str, Any]
    try:
        spec = json.loads(sys.stdin.read())
        measurement = measure(spec)
    except BenchFailure as exc:
        measurement = {"status": "error", "error_kind": exc.kind, "error": str(exc)}
    except MemoryError:
        measurement = {"status": "error", "error_kind": "runtime_error", "error": "out of memory"}
    except Exception as exc:  # anything else is still one line in the result, not a traceback
        measurement = {
            "status": "error",
            "error_kind": "runtime_error",
            "error": f"{type(exc).__name__}: {_line(exc)}",
        }
    with os.fdopen(result_fd, "w") as out:
        json.dump(measurement, out, allow_nan=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
