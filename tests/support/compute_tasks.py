"""Top-level task functions for the executor tests (spawned workers import them by name).

`measure_on_device` is the shape of a real proposal: host work outside the board's slot
(running the model on the host, as an accuracy check would), then a measurement through the
agent inside `board_slot`, returning the agent's own time stamps.
"""

from __future__ import annotations

import os
import time
from typing import Any


def square(x: int) -> int:
    return x * x


def fail_on(item: dict[str, Any]) -> int:
    """Sleeps `sleep` s, then raises a ValueError naming the item when `fail` is set."""
    time.sleep(item.get("sleep", 0.0))
    if item.get("fail"):
        raise ValueError(f"item {item['n']} is bad")
    if item.get("die"):
        os._exit(7)  # the worker process dies mid-task, like an OOM kill
    return int(item["n"])


def hold_slot(item: dict[str, Any]) -> dict[str, Any]:
    """Hold `device`'s slot for `hold` s; returns when the task and the slot began and ended."""
    from edgeprune.compute import board_slot

    began = time.time()
    with board_slot(item["device"]):
        start = time.time()
        time.sleep(item["hold"])
        end = time.time()
    return {"pid": os.getpid(), "began": began, "start": start, "end": end, "done": time.time()}


def host_work(model: str, seconds: float) -> int:
    """Invoke the model on the host for about `seconds` (real work, no board needed)."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=model)
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    x = np.zeros(inp["shape"], dtype=np.float32)
    stop, calls = time.monotonic() + seconds, 0
    while time.monotonic() < stop:
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        calls += 1
    return calls


def measure_on_device(item: dict[str, Any]) -> dict[str, Any]:
    """Host work, then one measurement on the `local` device inside its slot.

    item: model (path), data_home (the test's XDG_DATA_HOME: its local spool), host_s, runs.
    """
    os.environ["XDG_DATA_HOME"] = item["data_home"]
    from edgeprune.compute import board_slot
    from edgeprune.fleet.artifacts import load_model
    from edgeprune.fleet.inventory import local_device
    from edgeprune.fleet.options import BenchOptions
    from edgeprune.fleet.remote_bench import run_bench

    began = time.time()
    calls = host_work(item["model"], item["host_s"])
    host_end = time.time()
    results: list[Any] = []
    options = BenchOptions.create(runs=item["runs"], warmup=1).to_protocol()
    device = local_device()
    with board_slot(device.name):
        group = run_bench(
            [device],
            [load_model(item["model"])],
            options,
            on_result=lambda _device, _model, result: results.append(result),
        )
    (outcome,) = group
    if not outcome.ok:
        raise RuntimeError(f"bench failed: {outcome.message}")
    (result,) = results
    if result.status != "ok":
        raise RuntimeError(f"bench failed: {result.error}")
    return {
        "pid": os.getpid(),
        "device": device.name,
        "began": began,
        "host_end": host_end,
        "host_calls": calls,
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "done": time.time(),
    }
