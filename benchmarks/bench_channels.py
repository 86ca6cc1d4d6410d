"""Channel pruning makes MobileNetV2 faster everywhere, not only on XNNPACK's sparse path.

MobileNetV2-224 (weights=None, fp32) is pruned with `prune_channels(ratio=0.5)` (defaults:
L1, max normalizer, granularity 8, min 16 filters, union), converted with the stock
converter and run by ai_edge_litert's Interpreter (XNNPACK, 1 thread) in one process, the
three models interleaved round by round:

- dense: the original model;
- pruned: the pruned model (weights sliced from the dense one);
- same-shape: the pruned architecture built directly with fresh weights
  (`keras.Model.from_config(pruned.get_config())`), i.e. what a "narrow MobileNetV2" at
  exactly the pruned widths costs. MobileNetV2(alpha=0.5) is timed too, for reference only:
  its widths differ (it keeps 1280 final features and rounds layer widths differently).

Goals (channel pruning must pay for itself on the clock): dense / pruned >= 2.2; pruned / same-shape <= 1.10. Ratios are medians of
per-round ratios, so a neighbour's burst spoils a round, not the claim.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import numpy as np

from benchmarks.common import Ratio

SIZE = 224
INVOKES_PER_ROUND = 10
WARMUP = 5
ROUNDS = 15
RATIO = 0.5


def _convert(model: Any) -> bytes:
    from edgeprune import _tf

    tf = _tf.tf()
    with _tf.quiet_native_output():
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def _interpreter(content: bytes) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content, num_threads=1)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    sample = np.random.default_rng(0).normal(0, 1, detail["shape"]).astype(np.float32)
    interpreter.set_tensor(detail["index"], sample)
    for _ in range(WARMUP):
        interpreter.invoke()
    return interpreter


def _pin_to_one_cpu() -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})


def _time_rounds(interpreters: dict[str, Any]) -> dict[str, list[float]]:
    """Seconds per invoke of each model, one list entry per round, models alternating."""
    samples: dict[str, list[float]] = {name: [] for name in interpreters}
    names = list(interpreters)
    for round_index in range(ROUNDS):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            invoke = interpreters[name].invoke
            start = time.perf_counter()
            for _ in range(INVOKES_PER_ROUND):
                invoke()
            samples[name].append((time.perf_counter() - start) / INVOKES_PER_ROUND)
    return samples


def _median_ratio(top: list[float], bottom: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(top, bottom, strict=True))


def run() -> list[Ratio]:
    from edgeprune import _tf
    from edgeprune.channels import prune_channels
    from edgeprune.keras_stats import model_stats

    keras = _tf.keras()
    keras.utils.set_random_seed(0)
    dense = keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), weights=None)
    pruned, report = prune_channels(dense, ratio=RATIO)
    same_shape = keras.Model.from_config(pruned.get_config())  # fresh weights, same widths
    half_alpha = keras.applications.MobileNetV2(
        input_shape=(SIZE, SIZE, 3), weights=None, alpha=0.5
    )
    models = {"dense": dense, "pruned": pruned, "same_shape": same_shape, "alpha_0.5": half_alpha}
    stats = {name: model_stats(model) for name, model in models.items()}
    shapes_match = [w.shape for w in pruned.weights] == [w.shape for w in same_shape.weights]
    interpreters = {name: _interpreter(_convert(model)) for name, model in models.items()}

    _pin_to_one_cpu()
    samples = _time_rounds(interpreters)
    ms = {name: 1e3 * statistics.median(values) for name, values in samples.items()}
    macs = {name: s.macs for name, s in stats.items()}
    params = {name: s.params for name, s in stats.items()}
    common = {
        "removed_fraction": round(report.removed_fraction, 3),
        "dense_ms": ms["dense"],
        "pruned_ms": ms["pruned"],
        "same_shape_ms": ms["same_shape"],
        "alpha_0.5_ms": ms["alpha_0.5"],
    }
    return [
        Ratio(
            "channels: MobileNetV2-224 dense / pruned(50%) latency, XNNPACK 1 thread",
            _median_ratio(samples["dense"], samples["pruned"]),
            goal=2.2,
            higher_is_better=True,
            detail={
                **common,
                "dense_macs": macs["dense"],
                "pruned_macs": macs["pruned"],
                "dense_params": params["dense"],
                "pruned_params": params["pruned"],
                "mac_ratio": macs["dense"] / macs["pruned"],
            },
        ),
        Ratio(
            "channels: pruned / same-shape model built at that width, latency",
            _median_ratio(samples["pruned"], samples["same_shape"]),
            goal=1.10,
            detail={
                **common,
                "same_shape_weights_match": shapes_match,
                "same_shape_macs": macs["same_shape"],
                "same_shape_params": params["same_shape"],
                "alpha_0.5_macs": macs["alpha_0.5"],
                "alpha_0.5_params": params["alpha_0.5"],
            },
        ),
    ]
