"""Re-derive a kept bench_adapt run's lookup table from its raw runs with other statistics.

    python tools/table_statistics.py BENCH_ADAPT_WORK

For each device of the run, every entry and every whole model is taken again from the runs
the agent stored (`results.db`), as `DeviceMeter` scales them (a statistic of the runs times
the reference's statistic in the device check over the reference's in the same measuring
call; the lowest over the calls that measured it, as the re-measures keep). Then the
calibration line is fitted through the input model and its uniform cuts, and the loop's kept
models (`DEVICE/adapted.adapt/iter-NN/model.keras`) are predicted against their measured
latencies. One line per (entry statistic / whole-model statistic): how far the line misses
its own models and the kept ones. This is how `ENTRY_STATISTIC` (fastest runs) was chosen
(docs/architecture.md); it reads files only and measures nothing.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

Statistic = Callable[[np.ndarray], float]
STATISTICS: dict[str, Statistic] = {
    "median": lambda v: float(np.median(v)),
    "p25": lambda v: float(np.percentile(v, 25)),
    "p10": lambda v: float(np.percentile(v, 10)),
    "fastest": lambda v: float(np.min(v)),
}
PAIRS = (
    ("median", "median"),
    ("p25", "median"),
    ("p10", "median"),
    ("fastest", "median"),
    ("fastest", "fastest"),
)
"""(entry statistic, whole-model statistic) pairs to compare."""
REFERENCE = "input.tflite"


def _all_runs(conn: sqlite3.Connection, device: str) -> dict[int, np.ndarray]:
    """measurement id -> its timed runs (ms), for every measurement of `device`."""
    from edgeprune.results.latency_blob import decode

    query = (
        "SELECT m.id, l.encoding, l.data FROM measurements m "
        "JOIN latencies l ON l.job_id = m.job_id WHERE m.device=?"
    )
    return {
        measurement: np.asarray(decode(data, encoding))
        for measurement, encoding, data in conn.execute(query, (device,))
    }


def _signatures(path: Path, widths: dict[str, int] | None = None) -> list:
    from edgeprune.adapt.signatures import layer_signatures
    from edgeprune.adapt.widths import trace_model
    from edgeprune.models import load_keras_model

    traced = trace_model(load_keras_model(path), "l1")
    return layer_signatures(traced.graph, traced.keep_mask(widths or {}))


def _calibration_models(work: Path, granularity: int) -> list[list]:
    from edgeprune.adapt.options import AdaptOptions
    from edgeprune.adapt.widths import trace_model
    from edgeprune.models import load_keras_model
    from edgeprune.workflows.adapt import calibration_widths

    base = work / "base.keras"
    traced = trace_model(load_keras_model(base), "l1")
    options = AdaptOptions.create(
        target_speedup=2, data="digits", granularity=granularity, min_filters=granularity
    )
    return [_signatures(base)] + [_signatures(base, w) for w in calibration_widths(traced, options)]


def compare(work: Path, device: str, calibration_models: Sequence[list]) -> list[str]:
    """One line per statistic pair for `device` of the kept run in `work`."""
    from edgeprune.adapt.signatures import overhead_signature
    from edgeprune.adapt.table import Calibration

    conn = sqlite3.connect(work / "results.db")
    rows = conn.execute(
        "SELECT id, run_id, model_name FROM measurements WHERE device=? AND status='ok' "
        "ORDER BY id",
        (device,),
    ).fetchall()
    runs = _all_runs(conn, device)
    calls: dict[int, list[tuple[int, str]]] = {}
    for measurement, call, name in rows:
        calls.setdefault(call, []).append((measurement, name))
    check = next(m for m, name in calls[rows[0][1]] if name == REFERENCE)  # the device check
    kept = sorted((work / device / "adapted.adapt").glob("iter-*/model.keras"))
    kept_signatures = [_signatures(path) for path in kept]
    names = [REFERENCE] + [f"calibration-{k}.tflite" for k in range(len(calibration_models) - 1)]
    lines = []
    for entry_name, whole_name in PAIRS:
        entry_stat, whole_stat = STATISTICS[entry_name], STATISTICS[whole_name]
        entries: dict[str, float] = {}
        wholes: dict[str, float] = {}
        loop: list[float] = []
        for members in calls.values():
            reference = [m for m, name in members if name == REFERENCE]
            if not reference:
                continue  # only the whole-model jobs of the final bench: not the loop's
            calibrating = any(name.startswith("calibration-") for _, name in members)
            for measurement, name in members:
                whole = name in names or name == "model.tflite"
                stat = whole_stat if whole else entry_stat
                value = stat(runs[measurement]) * stat(runs[check]) / stat(runs[reference[0]])
                if name == "model.tflite":
                    loop.append(value)
                elif whole:
                    if calibrating:
                        wholes[name] = min(wholes.get(name, np.inf), value)
                else:
                    entries[name[:16]] = min(entries.get(name[:16], np.inf), value)
        overhead = entries[overhead_signature().key[:16]]

        def layer_sum(
            signatures: list, entries: dict[str, float] = entries, overhead: float = overhead
        ) -> float:
            return sum(max(entries[s.key[:16]] - overhead, 0.0) for s in signatures)

        line = Calibration.fit(
            [(layer_sum(s), wholes[n]) for s, n in zip(calibration_models, names, strict=True)]
        )
        errors = [
            (line.predict(layer_sum(s)) - ms) / ms
            for s, ms in zip(kept_signatures, loop, strict=False)
        ]
        worst = max((abs(e) for e in errors), default=float("nan"))
        lines.append(
            f"{device}: entries {entry_name}, whole models {whole_name}: line misses its "
            f"{len(names)} models by {line.max_error:.1%}; kept models "
            f"{' '.join(f'{e:+.1%}' for e in errors)} (max {worst:.1%})"
        )
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not (Path(argv[0]) / "results.db").is_file():
        print(
            "usage: python tools/table_statistics.py BENCH_ADAPT_WORK (a kept bench_adapt "
            "work dir, with results.db and base.keras)",
            file=sys.stderr,
        )
        return 2
    from benchmarks.bench_adapt import GRANULARITY

    work = Path(argv[0])
    models = _calibration_models(work, GRANULARITY)
    for device in sorted(p.parent.name for p in work.glob("*/adapted.adapt")):
        print("\n".join(compare(work, device, models)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
