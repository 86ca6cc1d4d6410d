"""Turning one agent Result into store rows: one per measurement (thread count), and each
measurement's raw latencies once, as a compact blob.

A row carries the 95 % intervals of its p50 and p90 (as the agent computed them from order
statistics; None when too few runs) and the group job it was measured in, so tables can
show the uncertainty and comparisons can pair interleaved rows without reading the JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from device_agents.protocol import Result
from edgeprune.results import latency_blob


@dataclass(frozen=True)
class ModelInfo:
    """What the host knows about a model (from the file and its manifest)."""

    name: str
    sha256: str
    size_bytes: int | None = None
    gzip_bytes: int | None = None
    quantization: str | None = None
    sparsity: float | None = None
    accuracy: float | None = None
    accuracy_source: str | None = None  # "manifest" | "device"


def rows_of_result(
    run_id: int, device: str, result: Result, model: ModelInfo
) -> Iterator[dict[str, Any]]:
    """One row per measurement; a job that failed outright is one error row (threads 0), a
    cancelled one a "cancelled" row (threads 0, no numbers)."""
    runtime = result.runtime or {}
    base = {
        "run_id": run_id,
        "device": device,
        "job_id": result.job_id,
        "model_sha256": result.model_sha256,
        "model_name": model.name,
        "size_bytes": model.size_bytes,
        "gzip_bytes": model.gzip_bytes,
        "quantization": model.quantization,
        "sparsity": model.sparsity,
        "runtime": runtime.get("name"),
        "runtime_version": runtime.get("version"),
        "sparse_path": _bool_or_none(
            (result.sparse_path or {}).get("taken", (result.sparse_path or {}).get("capable"))
        ),
        "device_model": _device_model(result.device),
        "warnings": json.dumps(list(dict.fromkeys(w.code for w in result.warnings))),
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "group_id": result.group,
        "result_json": result_without_latencies(result),
    }
    if not result.measurements:
        yield base | _empty_measurement(result)
        return
    for m in result.measurements:
        summary = m.summary
        yield base | {
            "threads": m.threads,
            "xnnpack": int(m.xnnpack),
            "status": m.status if result.status == "ok" else "error",
            "error": m.error or (result.error if result.status != "ok" else None),
            "p50_ms": summary.p50 if summary else None,
            "p90_ms": summary.p90 if summary else None,
            "p99_ms": summary.p99 if summary else None,
            **_interval("p50", summary.p50_ci if summary else None),
            **_interval("p90", summary.p90_ci if summary else None),
            "mean_ms": summary.mean if summary else None,
            "std_ms": summary.std if summary else None,
            "min_ms": summary.min if summary else None,
            "runs": summary.count if summary else None,
            "init_ms": m.init_ms,
            "first_invoke_ms": m.first_invoke_ms,
            "peak_rss_kb": m.peak_rss_kb,
            "accuracy": model.accuracy,
            "accuracy_source": model.accuracy_source if model.accuracy is not None else None,
        }


def result_without_latencies(result: Result) -> str:
    """The result as compact JSON with every `latencies_ms` emptied (they go to `latencies`)."""
    document = result.validate().to_dict()
    for measurement in document["measurements"]:
        measurement["latencies_ms"] = []
    return json.dumps(document, sort_keys=True, allow_nan=False, separators=(",", ":"))


def latency_rows(run_id: int, device: str, result: Result) -> Iterator[tuple[Any, ...]]:
    """(run_id, device, job_id, measurement index, count, encoding, blob) per measurement
    that has latencies."""
    for index, m in enumerate(result.measurements):
        if m.latencies_ms:
            yield (
                run_id,
                device,
                result.job_id,
                index,
                len(m.latencies_ms),
                latency_blob.ENCODING,
                latency_blob.encode(m.latencies_ms),
            )


def _empty_measurement(result: Result) -> dict[str, Any]:
    options = result.options
    return {
        "threads": 0,
        "xnnpack": int(options.xnnpack) if options else 1,
        # a cancelled job is stored as what it is: no numbers, status "cancelled"
        "status": result.status if result.status in ("ok", "cancelled") else "error",
        "error": result.error,
        **{k: None for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "runs")},
        **_interval("p50", None),
        **_interval("p90", None),
        "init_ms": None,
        "first_invoke_ms": None,
        "peak_rss_kb": None,
        "accuracy": None,
        "accuracy_source": None,
    }


def _interval(name: str, ci: list[float] | None) -> dict[str, float | None]:
    """`<name>_lo_ms` and `<name>_hi_ms` from a summary's 95 % interval (None: too few runs)."""
    low, high = (float(ci[0]), float(ci[1])) if ci else (None, None)
    return {f"{name}_lo_ms": low, f"{name}_hi_ms": high}


def _bool_or_none(value: Any) -> int | None:
    return None if value is None else int(bool(value))


def _device_model(device: dict[str, Any]) -> str | None:
    for key in ("board_model", "board", "cpu_model", "arch"):
        value = device.get(key)
        if isinstance(value, str) and value:
            return value
    return None
