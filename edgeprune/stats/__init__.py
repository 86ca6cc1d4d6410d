"""Statistics for decisions: intervals of latencies and accuracies, verdicts of comparisons.

Host-side only (numpy + scipy); `import edgeprune` does not import it.
"""

from edgeprune.stats._checks import StatsInputError
from edgeprune.stats.accuracy import (
    ACCURACY_VERDICTS,
    AccuracyDrop,
    accuracy_drop,
    accuracy_drop_unpaired,
    samples_needed,
    wilson_ci,
)
from edgeprune.stats.compare import (
    INDEPENDENT,
    NOISE_FLOOR,
    PAIRED,
    PAIRED_FEW_PROCESSES,
    PAIRED_PROCESSES,
    VERDICTS,
    SpeedupEstimate,
    compare_samples,
    verdict_of,
)
from edgeprune.stats.latency import (
    LatencySample,
    order_statistic_ranks,
    quantile_ci,
    relative_half_width,
)

__all__ = [
    "ACCURACY_VERDICTS",
    "INDEPENDENT",
    "NOISE_FLOOR",
    "PAIRED",
    "PAIRED_FEW_PROCESSES",
    "PAIRED_PROCESSES",
    "VERDICTS",
    "AccuracyDrop",
    "LatencySample",
    "SpeedupEstimate",
    "StatsInputError",
    "accuracy_drop",
    "accuracy_drop_unpaired",
    "compare_samples",
    "order_statistic_ranks",
    "quantile_ci",
    "relative_half_width",
    "samples_needed",
    "verdict_of",
    "wilson_ci",
]
