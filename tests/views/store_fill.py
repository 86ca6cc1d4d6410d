"""A real results store holding long file names, two devices and two runs, for the views."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device_agents.protocol import BenchOptions, LatencySummary, Measurement, Result
from device_agents.sparse_support import sparse_path_support
from edgeprune.results import ModelInfo, ResultsStore

MODELS = (  # name, median ms, accuracy, size
    ("cnn_gr0.8_fp32.tflite", 4.0, 0.9975, 1_200_000),
    ("cnn_gr0.8_int8_channels0.5_gradual.tflite", 2.0, 0.9950, 310_000),
    ("cnn_dense_fp32.tflite", 4.1, 0.9975, 1_200_000),
)
DEVICES = ("raspberrypi4-livingroom", "local")
MACHINES = {"raspberrypi4-livingroom": "aarch64", "local": "x86_64"}  # local: no sparse path


def draws(median: float, seed: int, n: int = 40) -> list[float]:
    rng = np.random.default_rng(seed)
    return [float(x) for x in median * np.exp(rng.normal(0.0, 0.03, n))]


def fill(path: Path, runs: int = 2) -> ResultsStore:
    """`runs` runs of every model on every device (the first model is the baseline)."""
    store = ResultsStore(path)
    for run_index in range(runs):
        run = store.begin_run("bench", {})
        for d, device in enumerate(DEVICES):
            for m, (name, median, accuracy, size) in enumerate(MODELS):
                sha = f"{m:x}" * 64
                latencies = draws(median * (1 + d), seed=100 * run_index + 10 * d + m)
                result = Result(
                    job_id=f"job-{run_index}-{d}-{m}",
                    model_sha256=sha,
                    status="ok",
                    runtime={"name": "ai_edge_litert", "version": "2.3.0"},
                    sparse_path=sparse_path_support(
                        "ai_edge_litert", "2.3.0", MACHINES[device], ["avx"]
                    ),
                    options=BenchOptions(threads=[1]),
                    measurements=[
                        Measurement(
                            threads=1,
                            xnnpack=True,
                            latencies_ms=latencies,
                            summary=LatencySummary.of(latencies),
                        )
                    ],
                    started_at=1.0,
                    finished_at=2.0,
                )
                info = ModelInfo(name, sha, size_bytes=size, accuracy=accuracy)
                store.add_result(run, device, result, info)
    return store
