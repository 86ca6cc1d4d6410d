"""The agent's numbers against LiteRT's own benchmark tool, and the agent's per-invoke overhead.

Fidelity: the agent's median latency (its full path: fresh child process, warmup, timed
loop) against `ai_edge_litert/tools/benchmark_litert_model.py` (shipped in the wheel) on the
same MobileNetV2-160 fp32 model, same thread count and CPU, runs interleaved so drift hits
both. Goal: within +/-3 %.

Overhead: the agent's timed loop (`bench_child._timed_runs`) against a bare `invoke()` loop
on the same interpreter, in alternating chunks; as a ratio (MobileNetV2) and in microseconds
per invoke (a tiny conv net, where any overhead would show).

Both are paired per round and summarised by the median ratio: this board may be shared, and
a neighbour's burst should spoil a round, not the claim.
"""

from __future__ import annotations

import gc
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Ratio

RUNS = 50
WARMUP = 10
ROUNDS = 11
CPU = 1 if os.cpu_count() and os.cpu_count() > 1 else 0
_MEDIAN = re.compile(r"Inference \(median\):\s+([0-9.]+) ms")


def _build_models(directory: Path) -> tuple[Path, Path]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from edgeprune._tf import keras, tf

    k, t = keras(), tf()
    k.utils.set_random_seed(0)
    mobilenet = k.applications.MobileNetV2(input_shape=(160, 160, 3), weights=None)
    big = directory / "mobilenetv2-160.tflite"
    big.write_bytes(t.lite.TFLiteConverter.from_keras_model(mobilenet).convert())
    inputs = k.Input((32, 32, 3), batch_size=1)
    x = k.layers.Conv2D(16, 3, activation="relu")(inputs)
    x = k.layers.GlobalAveragePooling2D()(x)
    tiny_model = k.Model(inputs, k.layers.Dense(10)(x))
    tiny = directory / "tiny.tflite"
    tiny.write_bytes(t.lite.TFLiteConverter.from_keras_model(tiny_model).convert())
    return big, tiny


def _pin() -> None:
    os.sched_setaffinity(0, {CPU})


def _tool_median(model: Path) -> float:
    import ai_edge_litert

    tool = Path(ai_edge_litert.__file__).parent / "tools" / "benchmark_litert_model.py"
    proc = subprocess.run(
        [
            sys.executable,
            str(tool),
            f"--model={model}",
            f"--num_runs={RUNS}",
            f"--warmup_runs={WARMUP}",
            "--num_threads=1",
        ],
        capture_output=True,
        text=True,
        preexec_fn=_pin,
        timeout=600,
    )
    match = _MEDIAN.search(proc.stdout)
    if proc.returncode != 0 or not match:
        raise RuntimeError(f"benchmark_litert_model failed: {proc.stderr[-500:]}")
    return float(match.group(1))


def _agent_median(model: Path) -> float:
    from device_agents.bench import benchmark_model
    from device_agents.integrity import sha256_file
    from device_agents.protocol import BenchOptions

    options = BenchOptions(threads=[1], runs=RUNS, warmup=WARMUP, cpus=[CPU])
    result = benchmark_model(
        str(model), options, job_id="fidelity", model_sha256=sha256_file(str(model))
    )
    if result.status != "ok":
        raise RuntimeError(f"agent benchmark failed: {result.error}")
    return result.measurements[0].summary.p50


def _overhead(model: Path, chunk: int, chunks: int) -> tuple[float, float]:
    """(bare s/invoke, agent-loop s/invoke): medians over alternating chunks of `chunk` runs.

    The agent's loop is `bench_child._timed_runs` itself (clock reads and a list append around
    each invoke); the bare loop is nothing but `invoke()`. Chunks alternate, so a neighbour's
    burst lands on both alike, and the median chunk ignores the bursts.
    """
    from ai_edge_litert.interpreter import Interpreter

    from device_agents import inputs
    from device_agents.bench_child import _timed_runs

    _pin()
    interpreter = Interpreter(model_path=str(model), num_threads=1)
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()
    sample = inputs.random_sample(details, 0)
    interpreter.set_tensor(details[0]["index"], sample[0])
    for _ in range(WARMUP):
        interpreter.invoke()
    spec = {"runs": chunk, "min_seconds": None, "delay_ms": 0.0}
    invoke = interpreter.invoke
    bare, agent = [], []
    gc.collect()
    for _ in range(chunks):
        start = time.perf_counter()
        for _ in range(chunk):
            invoke()
        bare.append((time.perf_counter() - start) / chunk)
        start = time.perf_counter()
        _timed_runs(interpreter, [sample], None, spec)
        agent.append((time.perf_counter() - start) / chunk)
    return statistics.median(bare), statistics.median(agent)


def run() -> list[Ratio]:
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        big, tiny = _build_models(Path(tmp))
        agent_ms, tool_ms = [], []
        load_start = os.getloadavg()[0]
        for index in range(ROUNDS):  # paired, interleaved, order alternating
            if index % 2:
                tool_ms.append(_tool_median(big))
                agent_ms.append(_agent_median(big))
            else:
                agent_ms.append(_agent_median(big))
                tool_ms.append(_tool_median(big))
        ratio = statistics.median(a / t for a, t in zip(agent_ms, tool_ms, strict=True))
        bare_big, agent_big = _overhead(big, chunk=5, chunks=100)
        bare_tiny, agent_tiny = _overhead(tiny, chunk=200, chunks=200)
        load_end = os.getloadavg()[0]
    return [
        Ratio(
            "fidelity: |agent median / benchmark_litert_model median - 1| (MobileNetV2-160 fp32, 1 thread)",
            abs(ratio - 1.0),
            goal=0.03,
            detail={
                "ratio": ratio,
                "fastest_rounds_ratio": min(agent_ms) / min(tool_ms),
                "load_avg_1min": f"{load_start:.1f} -> {load_end:.1f}",
                "agent_rounds_ms": [round(x, 3) for x in agent_ms],
                "tool_rounds_ms": [round(x, 3) for x in tool_ms],
                "runs": RUNS,
                "cpu": CPU,
            },
        ),
        Ratio(
            "overhead: agent timed loop / bare invoke() loop, per invoke (MobileNetV2-160)",
            agent_big / bare_big,
            goal=1.01,
            detail={"bare_ms": bare_big * 1e3, "agent_loop_ms": agent_big * 1e3},
        ),
        Ratio(
            "overhead: agent timed loop minus bare invoke() loop, microseconds per invoke (tiny net)",
            (agent_tiny - bare_tiny) * 1e6,
            goal=1.0,
            detail={"bare_us": bare_tiny * 1e6, "agent_loop_us": agent_tiny * 1e6},
        ),
    ]
