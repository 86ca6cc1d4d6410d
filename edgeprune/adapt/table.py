"""The latency lookup table: what each layer signature costs on one device, measured there.

Entries are kept in SQLite per context (device, runtime and its version, threads,
quantization, XNNPACK), so a second `adapt` on the same board measures only signatures it
has never seen. Missing entries are measured as one-layer .tflite models in the
quantization that will ship, handed to `measure` all at once (the caller batches them into
interleaved group jobs and gives each entry's fastest run, `DeviceMeter.table`; an entry's
`median_ms` holds whatever statistic that measure gives). A model's predicted latency is a
line through its layers' summed entries, `intercept + slope x sum` (`Calibration`), fitted
in relative error on whole models measured side by side (the input model and uniformly cut
copies of it): the intercept is what the layers do not carry (invoke, input/output copies,
fused and free layers), the slope what one-layer models measured alone get wrong in a whole
model (cache and memory traffic). It is kept per model and set of cut copies beside the entries, so a second `adapt`
of that model decides as the first.

A sum of one-layer entries follows a whole model only where its latency is smooth in width.
On an x86 host at granularity 8 it is not: XNNPACK's f32 kernels there tile output channels
by 16, and a model with 184-channel layers measured slower than the same model at 192
(bench_adapt); there no line through layer sums predicts every width within 10 %, and at
granularity 16 bench_adapt's final models were within 9.1 % (docs/architecture.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.adapt.signatures import LayerSignature, build_layer_model, overhead_signature
from edgeprune.errors import UserError
from edgeprune.paths import data_dir

TABLE_FILE = "adapt-table.db"
CALIBRATION_SAMPLES = 16

_SCHEMA = """
CREATE TABLE IF NOT EXISTS contexts (
    context TEXT PRIMARY KEY,
    description TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    context TEXT NOT NULL,
    signature TEXT NOT NULL,
    layer TEXT NOT NULL,
    median_ms REAL NOT NULL,
    low_ms REAL,
    high_ms REAL,
    runs INTEGER NOT NULL,
    measured_at REAL NOT NULL,
    PRIMARY KEY (context, signature)
);
CREATE TABLE IF NOT EXISTS calibrations (
    context TEXT NOT NULL,
    model TEXT NOT NULL,
    intercept_ms REAL NOT NULL,
    slope REAL NOT NULL,
    points TEXT NOT NULL,
    measured_at REAL NOT NULL,
    PRIMARY KEY (context, model)
);
"""


@dataclass(frozen=True)
class Latency:
    """A measured median (ms) with its 95 % interval (None when too few runs)."""

    median_ms: float
    low_ms: float | None
    high_ms: float | None
    runs: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "median_ms": self.median_ms,
            "ci_ms": None if self.low_ms is None else [self.low_ms, self.high_ms],
            "runs": self.runs,
        }

    def scaled(self, factor: float) -> Latency:
        """This latency (and its interval) times `factor`: in another job's conditions."""
        low = None if self.low_ms is None else self.low_ms * factor
        high = None if self.high_ms is None else self.high_ms * factor
        return Latency(self.median_ms * factor, low, high, self.runs)


@dataclass(frozen=True)
class Calibration:
    """predicted whole-model ms = intercept_ms + slope x (sum of the layers' entries).

    `points` are the (layer sum, measured ms) pairs it was fitted on, the first the input
    model."""

    intercept_ms: float
    slope: float
    points: tuple[tuple[float, float], ...] = ()

    @classmethod
    def fit(cls, points: Sequence[tuple[float, float]]) -> Calibration:
        """The line with the least squared *relative* error over `points` (the input model
        and its uniform cuts, measured side by side): 10 % off on the smallest cut weighs as
        much as 10 % off on the input model, which an absolute fit would trade away for the
        largest model. A slope that is not positive (noise larger than what the cuts saved),
        or points with a single layer sum, fall back to slope 1 through the first point."""
        sums = np.array([s for s, _ in points], dtype=float)
        measured = np.array([m for _, m in points], dtype=float)
        intercept, slope = float(measured[0] - sums[0]), 1.0
        if len(points) > 1 and float(np.ptp(sums)) > 0 and bool(np.all(measured > 0)):
            weight = 1.0 / measured
            design = np.stack([weight, sums * weight], axis=1)
            (a, b), *_ = np.linalg.lstsq(design, np.ones_like(measured), rcond=None)
            if np.isfinite(a) and np.isfinite(b) and b > 0:
                intercept, slope = float(a), float(b)
        return cls(intercept, slope, tuple((float(s), float(m)) for s, m in points))

    @classmethod
    def from_dict(cls, kept: dict[str, Any]) -> Calibration:
        """Back from `to_dict` (a work dir's state, a report)."""
        points = tuple((float(s), float(m)) for s, m in kept.get("points_ms", ()))
        return cls(float(kept["intercept_ms"]), float(kept["slope"]), points)

    def predict(self, layer_sum: float) -> float:
        return self.intercept_ms + self.slope * layer_sum

    @property
    def max_error(self) -> float:
        """The line's largest miss on its own points, relative to what was measured: how far
        the table and the whole models it is fitted on disagree (0 without points)."""
        misses = [abs(self.predict(s) - m) / m for s, m in self.points if m > 0]
        return max(misses, default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "intercept_ms": self.intercept_ms,
            "slope": self.slope,
            "points_ms": [list(p) for p in self.points],
            "max_error": self.max_error,
        }


Measure = Callable[[Sequence[Path]], list[Latency]]
"""measure(tflite files) -> their latencies on the device, in order."""


def default_table_path() -> Path:
    """Where the table lives unless told: <data dir>/adapt-table.db."""
    return data_dir() / TABLE_FILE


def context_key(context: dict[str, Any]) -> str:
    """The id of one measuring context (what makes latencies comparable)."""
    return hashlib.sha256(json.dumps(context, sort_keys=True).encode()).hexdigest()[:32]


class LatencyTable:
    """The entries of one context in a table file; `measured` counts entries this run added."""

    def __init__(self, path: str | os.PathLike[str] | None, context: dict[str, Any]) -> None:
        self.path = Path(path) if path is not None else default_table_path()
        self.context = context
        self.key = context_key(context)
        self.measured = 0
        self.batches = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(self._connect()) as conn, conn:
                conn.executescript(_SCHEMA)
                conn.execute(
                    "INSERT OR IGNORE INTO contexts VALUES (?, ?)",
                    (self.key, json.dumps(context, sort_keys=True)),
                )
        except (OSError, sqlite3.Error) as exc:
            raise UserError(
                f"latency table {str(self.path)!r} cannot be opened ({exc}); give another "
                "file with table",
                params=("table",),
            ) from None
        self._cache: dict[str, Latency] = self._load()

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def _load(self) -> dict[str, Latency]:
        with closing(self._connect()) as conn:
            rows = conn.execute(
                "SELECT signature, median_ms, low_ms, high_ms, runs FROM entries WHERE context=?",
                (self.key,),
            ).fetchall()
        return {r[0]: Latency(r[1], r[2], r[3], r[4]) for r in rows}

    def __len__(self) -> int:
        return len(self._cache)

    def __contains__(self, key: object) -> bool:
        return key in self._cache

    def entry(self, signature: LayerSignature) -> Latency:
        return self._cache[signature.key]

    def missing(self, signatures: Iterable[LayerSignature]) -> list[LayerSignature]:
        """The signatures without an entry, each once."""
        seen: dict[str, LayerSignature] = {}
        for signature in signatures:
            if signature.key not in self._cache:
                seen.setdefault(signature.key, signature)
        return list(seen.values())

    @property
    def overhead_ms(self) -> float:
        """What invoking a one-element model costs (after the first `fill`)."""
        return self._cache[overhead_signature().key].median_ms

    def layer_sum(self, signatures: Iterable[LayerSignature]) -> float:
        """The sum of the entries less the invoke overhead each one-layer model carries (ms);
        every signature must have an entry (see `fill`)."""
        overhead = self.overhead_ms
        return float(sum(max(self._cache[s.key].median_ms - overhead, 0.0) for s in signatures))

    def kept_calibration(self, models: Sequence[Iterable[LayerSignature]]) -> Calibration | None:
        """The calibration kept for these models (the input model and its cut copies, by
        their layers' signatures) in this context, if any: a second `adapt` of the same model
        predicts and decides as the first did."""
        with closing(self._connect()) as conn:
            row = conn.execute(
                "SELECT intercept_ms, slope, points FROM calibrations WHERE context=? AND model=?",
                (self.key, _models_key(models)),
            ).fetchone()
        if row is None:
            return None
        points = tuple((float(s), float(m)) for s, m in json.loads(row[2]))
        return Calibration(float(row[0]), float(row[1]), points)

    def keep_calibration(
        self, models: Sequence[Iterable[LayerSignature]], fitted: Calibration
    ) -> None:
        """Keep `fitted` as these models' calibration (see `kept_calibration`)."""
        with closing(self._connect()) as conn, conn:
            conn.execute(
                "INSERT OR REPLACE INTO calibrations VALUES (?, ?, ?, ?, ?, ?)",
                (
                    self.key,
                    _models_key(models),
                    fitted.intercept_ms,
                    fitted.slope,
                    json.dumps([list(p) for p in fitted.points]),
                    time.time(),
                ),
            )

    def fill(self, signatures: Iterable[LayerSignature], measure: Measure, quantize: str) -> int:
        """Measure every signature without an entry (one call of `measure`); returns how many.

        The invoke overhead (a one-element model) is measured with the first batch."""
        todo = self.missing([*signatures, overhead_signature()])
        if not todo:
            return 0
        self.record(list(zip(todo, self._measure(todo, measure, quantize), strict=True)))
        self.measured += len(todo)
        return len(todo)

    def remeasure(
        self, signatures: Iterable[LayerSignature], measure: Measure, quantize: str
    ) -> int:
        """Measure these signatures (and the invoke overhead) again in one call of `measure`
        and keep the lower of the two of each: load on a device only ever adds time, so the
        lower is the nearer to what the layer costs. Returns how many went down."""
        todo = list({s.key: s for s in [*signatures, overhead_signature()]}.values())
        lower = [
            (signature, new)
            for signature, new in zip(todo, self._measure(todo, measure, quantize), strict=True)
            if signature.key not in self._cache or new.median_ms < self.entry(signature).median_ms
        ]
        self.record(lower)
        self.measured += len(todo)
        return len(lower)

    def _measure(
        self, signatures: Sequence[LayerSignature], measure: Measure, quantize: str
    ) -> list[Latency]:
        with tempfile.TemporaryDirectory(prefix="edgeprune-table-") as tmp:
            paths = [
                write_layer_tflite(s, Path(tmp) / f"{s.key[:16]}.tflite", quantize)
                for s in signatures
            ]
            latencies = measure(paths)
        self.batches += 1
        return latencies

    def record(self, entries: Sequence[tuple[LayerSignature, Latency]]) -> None:
        """Keep these entries (measured here by `fill`, or elsewhere) in the file and cache."""
        now = time.time()
        with closing(self._connect()) as conn, conn:
            conn.executemany(
                "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (self.key, s.key, s.path, lat.median_ms, lat.low_ms, lat.high_ms, lat.runs, now)
                    for s, lat in entries
                ],
            )
        for signature, latency in entries:
            self._cache[signature.key] = latency


def _model_key(signatures: Iterable[LayerSignature]) -> str:
    return hashlib.sha256("\n".join(sorted(s.key for s in signatures)).encode()).hexdigest()


def _models_key(models: Sequence[Iterable[LayerSignature]]) -> str:
    return hashlib.sha256("\n".join(_model_key(m) for m in models).encode()).hexdigest()


def write_layer_tflite(signature: LayerSignature, path: Path, quantize: str) -> Path:
    """The one-layer model of `signature` as .tflite (int8: calibrated on random inputs)."""
    from edgeprune import _tf
    from edgeprune._tf import quiet_native_output

    tf = _tf.tf()
    model = build_layer_model(signature)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize == "int8":
        rng = np.random.default_rng(0)
        shapes = signature.input_shapes

        def representative() -> Any:
            for _ in range(CALIBRATION_SAMPLES):
                yield [rng.standard_normal(s).astype(np.float32) for s in shapes]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with quiet_native_output(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Statistics for quantized inputs were expected"
        path.write_bytes(bytes(converter.convert()))
    return path
