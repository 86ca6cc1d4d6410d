"""One-shot prune + convert against a bare convert of the same model (goal <= 1.3x).

Both sides run `edgeprune.tflite.convert` end to end (converter, smoke run, manifest) on
the same MobileNetV2 (alpha 0.35, 96x96, ~0.4 M params), alternated round by round. The
pruned side restores the dense weights (a few ms, inside its timing), prunes 80 % of the
prunable kernels and converts with weights stored sparse, as `auto` chooses.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import Ratio, interleaved_medians

SPARSITY = 0.8
ROUNDS = 3


def _numpy_prune(model: Any, sparsity: float) -> None:
    """Fallback when edgeprune.prune is missing: zero the smallest kernel weights per layer."""
    for layer in model.layers:
        if layer.__class__.__name__ not in ("Conv2D", "Dense", "DepthwiseConv2D"):
            continue
        weights = layer.get_weights()
        kernel = weights[0]
        if kernel.size < 1024:
            continue
        flat = kernel.reshape(-1).copy()
        flat[np.argsort(np.abs(flat))[: round(sparsity * flat.size)]] = 0.0
        weights[0] = flat.reshape(kernel.shape)
        layer.set_weights(weights)


def _pruner() -> tuple[str, Any]:
    try:
        from edgeprune.prune import prune_model
    except ImportError:
        return "numpy magnitude prune (edgeprune.prune missing)", _numpy_prune
    return "edgeprune.prune.prune_model(scope='local')", lambda m, s: prune_model(m, s)


def run() -> list[Ratio]:
    from edgeprune import _tf
    from edgeprune.tflite import convert

    keras = _tf.keras()
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10
    )
    dense_weights = model.get_weights()
    prune_name, prune = _pruner()
    reports: dict[str, Any] = {}

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)

        def bare() -> None:
            model.set_weights(dense_weights)
            reports["bare"] = convert(model, out / "bare.tflite")

        def pruned() -> None:
            model.set_weights(dense_weights)
            prune(model, SPARSITY)
            reports["pruned"] = convert(model, out / "pruned.tflite")

        bare()  # warm-up: TF import, first trace
        medians = interleaved_medians({"bare": bare, "pruned": pruned}, rounds=ROUNDS)

    return [
        Ratio(
            name="one-shot prune + convert / bare convert (MobileNetV2 0.35, 96x96)",
            measured=medians["pruned"] / medians["bare"],
            goal=1.3,
            detail={
                "bare_s": medians["bare"],
                "prune_convert_s": medians["pruned"],
                "prune": prune_name,
                "sparsity": SPARSITY,
                "sparse_weights": reports["pruned"].sparse_weights,
                "rounds": ROUNDS,
            },
        )
    ]
