"""Gradual pruning's cost per training epoch, against plain training, on the digits demo.

Two identical demo models train side by side, one epoch at a time and in alternation
(`interleaved_medians`), one plain and one with `PruningCallback` ramping to 80 % sparsity
at the frequency `prune_gradually` would choose for its default 8-epoch run. Each model's
first epoch (graph tracing) is a warm-up and is not timed.
"""

from __future__ import annotations

import math

from benchmarks.common import Ratio, interleaved_medians

ROUNDS = 9
TARGET_SPARSITY = 0.8
BATCH_SIZE = 32


def run() -> list[Ratio]:
    from edgeprune import _tf
    from edgeprune.data import load_dataset
    from edgeprune.demo import build_demo_model, compile_for_training
    from edgeprune.prune import PolynomialDecay, PruningCallback
    from edgeprune.prune.gradual import default_schedule

    _tf.keras()
    data = load_dataset("digits")
    steps_per_epoch = math.ceil(len(data.x_train) / BATCH_SIZE)
    frequency = default_schedule(TARGET_SPARSITY, 8 * steps_per_epoch).frequency
    schedule = PolynomialDecay(
        0.0, TARGET_SPARSITY, 0, (ROUNDS + 1) * steps_per_epoch - 1, frequency=frequency
    )
    plain = compile_for_training(build_demo_model())
    pruned = compile_for_training(build_demo_model())
    callback = PruningCallback(schedule)

    def plain_epoch() -> None:
        plain.fit(data.x_train, data.y_train, batch_size=BATCH_SIZE, epochs=1, verbose=0)

    def pruning_epoch() -> None:
        pruned.fit(
            data.x_train,
            data.y_train,
            batch_size=BATCH_SIZE,
            epochs=1,
            verbose=0,
            callbacks=[callback],
        )

    plain_epoch()
    pruning_epoch()
    times = interleaved_medians({"plain": plain_epoch, "gradual": pruning_epoch}, rounds=ROUNDS)
    return [
        Ratio(
            "gradual-pruning epoch / plain epoch (digits demo)",
            times["gradual"] / times["plain"],
            goal=1.2,
            detail={
                "plain_s": times["plain"],
                "gradual_s": times["gradual"],
                "mask_frequency": frequency,
                "steps_per_epoch": steps_per_epoch,
                "final_sparsity": callback.report.overall if callback.report else None,
            },
        )
    ]
