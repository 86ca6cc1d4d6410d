"""Fitting the table's calibration, and measuring again when the table and the whole models
disagree.

On an idle device a sum of one-layer entries follows the whole model closely: on this x86
host the input model and its uniform cuts measured within 0.5 % of one line through their
layer sums, and on the emulated Pi 4 within 4 %. A line that misses its own points by more
says a measurement was disturbed (a busy host made the one-layer models up to 1.7x slower
in one bench run, and no line then fit within 10 %). Then the entries of those models and
the models themselves are measured again and the lower value of each (an entry's fastest
run, a model's median) is kept, since load only ever adds time; a fit still off after that
is reported, not hidden.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edgeprune.adapt.signatures import LayerSignature
from edgeprune.adapt.table import Calibration, LatencyTable, Measure

FIT_TOLERANCE = 0.05
"""A calibration whose line misses one of its own models by more than this is measured
again (half the 10 % the predictions are held to)."""


@dataclass(frozen=True)
class SettledCalibration:
    """The calibration and how many times its models were measured again."""

    calibration: Calibration
    remeasured: int

    @property
    def fits(self) -> bool:
        """Its line meets its own models within `FIT_TOLERANCE`."""
        return self.calibration.max_error <= FIT_TOLERANCE


def settle_calibration(
    table: LatencyTable,
    models: Sequence[Sequence[LayerSignature]],
    measured_ms: Sequence[float],
    *,
    measure_entries: Measure,
    measure_models: Callable[[], list[float]],
    quantize: str,
    remeasures: int,
) -> SettledCalibration:
    """Fit the line through `models`' layer sums and `measured_ms` (the input model first);
    while it misses by more than `FIT_TOLERANCE`, up to `remeasures` times, measure every
    entry of `models` again (`measure_entries`) and the models again (`measure_models`,
    in the same conditions as `measured_ms`), keeping the lower value of each."""
    if len(models) != len(measured_ms):
        raise ValueError("give one measured latency per model")
    measured = list(measured_ms)
    signatures = [s for model in models for s in model]
    table.fill(signatures, measure_entries, quantize)
    done = 0
    while True:
        fitted = Calibration.fit(
            [(table.layer_sum(model), ms) for model, ms in zip(models, measured, strict=True)]
        )
        settled = SettledCalibration(fitted, done)
        if settled.fits or done >= remeasures:
            return settled
        table.remeasure(signatures, measure_entries, quantize)
        again = measure_models()
        measured = [min(old, new) for old, new in zip(measured, again, strict=True)]
        done += 1
