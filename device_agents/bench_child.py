"""The process that measures one model at one thread count (in one go, or in rounds).

Run as ``python -m device_agents.bench_child --parent PID`` by `bench.py`, with the spec as
JSON on stdin. It writes one JSON object (a `protocol.Measurement`) to the stdout it was
given; everything else, including what native runtime code prints, goes to stderr. A fresh
process per measurement means its peak RSS belongs to this model alone, and a runtime that
segfaults or hangs takes down only this process.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import signal
import sys
import time
from typing import Any, Dict, Iterator, List, Optional

MAX_TIMED_RUNS = 1_000_000
PR_SET_PDEATHSIG = 1
# Set in a zygote (zygote.py) before it forks: its import of the runtime, which a forked
# child reports as its own import_ms (the child itself imports nothing).
PREIMPORTED_MS: Optional[float] = None


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


class Session:
    """A loaded, initialised and warmed-up interpreter, ready for timed runs."""

    def __init__(self, spec: Dict[str, Any]) -> None:
        from . import inputs, runtimes

        self.spec = spec
        cpus = spec.get("cpus")
        if cpus:
            try:
                os.sched_setaffinity(0, cpus)
            except (OSError, ValueError) as exc:
                raise BenchFailure(
                    "cpus_unavailable", f"cannot run on CPUs {cpus}: {exc}"
                ) from None
        self.affinity = (
            sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        )

        start = time.perf_counter()
        try:
            interpreter_cls, resolver_enum = runtimes.interpreter_api(spec["runtime"])
        except ImportError as exc:
            raise BenchFailure(
                "runtime_missing", f"runtime {spec['runtime']} cannot be imported: {exc}"
            ) from None
        self.import_ms = _ms(time.perf_counter() - start)
        if PREIMPORTED_MS is not None:
            self.import_ms = PREIMPORTED_MS
        self.rss_before_model = _status_kb("VmRSS")

        start = time.perf_counter()
        with open(spec["model_path"], "rb") as handle:
            content = handle.read()
        self.load_ms = _ms(time.perf_counter() - start)

        start = time.perf_counter()
        try:
            interpreter = runtimes.create_interpreter(
                interpreter_cls, resolver_enum, content, spec["threads"], spec["xnnpack"]
            )
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise BenchFailure(
                "bad_model", f"the runtime rejected the model: {_line(exc)}"
            ) from None
        self.init_ms = _ms(time.perf_counter() - start)
        self.interpreter = interpreter

        self.input_details = interpreter.get_input_details()
        self.output_details = interpreter.get_output_details()
        try:
            if spec.get("inputs_path"):
                self.samples = inputs.load_samples(spec["inputs_path"], self.input_details)
                self.recorder = inputs.OutputRecorder("inputs")
            else:
                self.samples = [inputs.random_sample(self.input_details, spec["seed"])]
                self.recorder = inputs.OutputRecorder("random")
        except inputs.InputsError as exc:
            raise BenchFailure("bad_inputs", str(exc)) from None
        # timed runs so far (a fresh process of the same member starts where the last one
        # stopped): the next sample continues the cycle across rounds and processes
        self.done = int(spec.get("first_run") or 0)
        self.collected = False
        with _invoking():
            self.feed(self.samples[0])
            start = time.perf_counter()
            interpreter.invoke()
            self.first_invoke_ms = _ms(time.perf_counter() - start)
            for i in range(spec["warmup"]):
                if len(self.samples) > 1:
                    self.feed(self.samples[i % len(self.samples)])
                interpreter.invoke()

    def feed(self, sample: List[Any]) -> None:
        for detail, array in zip(self.input_details, sample):  # noqa: B905 (3.8)
            self.interpreter.set_tensor(detail["index"], array)

    def timed(self, runs: Optional[int], min_seconds: Optional[float]) -> List[float]:
        """Timed runs in ms (see `_timed_runs`)."""
        if not self.collected:  # start timing with nothing for the collector to do (once: a
            gc.collect()  # full collection costs milliseconds, more than a round of a small model)
            self.collected = True
        with _invoking():
            latencies = _timed_runs(
                self.interpreter,
                self.samples,
                self.feed,
                dict(self.spec, runs=runs, min_seconds=min_seconds),
                self.done,
            )
        self.done += len(latencies)
        return [_ms(x) for x in latencies]

    def setup_facts(self) -> Dict[str, Any]:
        return {
            "threads": self.spec["threads"],
            "xnnpack": self.spec["xnnpack"],
            "status": "ok",
            "import_ms": self.import_ms,
            "load_ms": self.load_ms,
            "init_ms": self.init_ms,
            "first_invoke_ms": self.first_invoke_ms,
            "rss_before_model_kb": self.rss_before_model,
            "cpu_affinity": self.affinity,
        }

    def finish(self, outputs: bool = True) -> Dict[str, Any]:
        """Peak memory, and the outputs of every sample (for accuracy and cross-checks);
        a later process of the same member skips the outputs (the first one has them)."""
        if not outputs:
            return {"peak_rss_kb": _status_kb("VmHWM")}
        with _invoking():
            for sample in self.samples:
                self.feed(sample)
                self.interpreter.invoke()
                self.recorder.add(
                    [self.interpreter.get_tensor(d["index"]) for d in self.output_details]
                )
        return {"peak_rss_kb": _status_kb("VmHWM"), "outputs": self.recorder.to_dict()}


@contextlib.contextmanager
def _invoking() -> Iterator[None]:
    """The runtime raising while running the model is a runtime_error."""
    try:
        yield
    except (ValueError, RuntimeError) as exc:
        raise BenchFailure("runtime_error", f"invoke() failed: {_line(exc)}") from None


def measure(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Load, initialise, warm up and time the model as `spec` says; return a Measurement dict."""
    from .protocol import LatencySummary

    session = Session(spec)
    latencies_ms = session.timed(spec.get("runs"), spec.get("min_seconds"))
    measurement = session.setup_facts()
    measurement.update(session.finish())
    measurement["latencies_ms"] = latencies_ms
    measurement["summary"] = LatencySummary.of(latencies_ms).__dict__
    return measurement


def serve_rounds(commands: Any, reply: Any) -> None:
    """The long-lived mode of an interleaved job: one JSON command per line on stdin.

    First line: the spec (as for `measure`) -> {"status": "ok", setup facts...}. Then
    {"cmd": "runs", "n": N} -> {"latencies_ms": [...]}, as often as the agent asks, and
    {"cmd": "finish"} -> {"peak_rss_kb", "outputs"} (with "outputs": false only the
    peak), after which the process exits. The spec's "first_run" (default 0) is how many
    timed runs earlier processes of this member made, so inputs keep cycling. A
    failure answers {"status": "error", "error_kind", "error"} and ends the process.
    """
    session = Session(json.loads(next(commands)))
    reply(session.setup_facts())
    for line in commands:
        command = json.loads(line)
        if command.get("cmd") == "runs":
            reply({"latencies_ms": session.timed(int(command["n"]), None)})
        elif command.get("cmd") == "finish":
            reply(session.finish(command.get("outputs", True) is not False))
            return
        else:
            raise BenchFailure("runtime_error", f"unknown command {command.get('cmd')!r}")


def _timed_runs(
    interpreter: Any, samples: List[Any], feed: Any, spec: Dict[str, Any], offset: int = 0
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
                feed(samples[(offset + count) % len(samples)])
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
    parser.add_argument("--member", default="", help="member id of a group job (the same)")
    parser.add_argument("--rounds", action="store_true", help="serve commands, see serve_rounds")
    parser.add_argument("--zygote", action="store_true", help="be a fork server, see zygote.py")
    parser.add_argument("--runtime", default="", help="the runtime a zygote imports")
    parser.add_argument("--control", type=int, default=-1, help="a zygote's control socket")
    args = parser.parse_args(argv)
    if args.zygote:
        from . import zygote

        _die_with_parent(args.parent)
        return zygote.serve(args.control, args.runtime)
    result_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints (ours or native code's) must not corrupt the result
    _die_with_parent(args.parent)
    if args.rounds:
        return _rounds_main(result_fd)
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


def _rounds_main(result_fd: int) -> int:
    out = os.fdopen(result_fd, "w")

    def reply(document: Dict[str, Any]) -> None:
        out.write(json.dumps(document, allow_nan=False) + "\n")
        out.flush()

    try:
        serve_rounds(iter(sys.stdin.readline, ""), reply)
    except BenchFailure as exc:
        reply({"status": "error", "error_kind": exc.kind, "error": str(exc)})
    except MemoryError:
        reply({"status": "error", "error_kind": "runtime_error", "error": "out of memory"})
    except Exception as exc:  # one line in the reply, not a traceback
        reply(_unexpected(exc))
    out.close()
    return 0


def _unexpected(exc: BaseException) -> Dict[str, Any]:
    return {
        "status": "error",
        "error_kind": "runtime_error",
        "error": f"{type(exc).__name__}: {_line(exc)}",
    }


if __name__ == "__main__":
    sys.exit(main())
