"""Rows for people: model × device × threads with speed-up against a baseline model, and runs
side by side. Plain dicts in, plain dicts out, so the CLI, --json, CSV and HTML all agree.

Every latency carries its 95 % interval (`p50_ci_ms`) and the runs it rests on, and every
speed-up its interval and a verdict (`faster`, `slower`, `indistinguishable`; the baseline
row says `baseline`) from `edgeprune.stats.compare_samples`: paired rounds when both models
were measured interleaved in one group job, an independent bootstrap otherwise. The raw
runs come from the rows' stored results, so callers read rows `with_json=True`; rows without
them (old DBs) still get their p50 ratio, with no interval and no verdict.
"""

from __future__ import annotations

from typing import Any

Key = tuple[str, int, bool]  # (device, threads, xnnpack)
RESAMPLES = 2000
COMPARISON_FIELDS = ("speedup_ci", "verdict", "method", "runs_to_decide")


def measurement_of(row: dict[str, Any]) -> dict[str, Any] | None:
    """The stored Measurement (as a dict, latencies put back) a store row was made from."""
    result = row.get("result")
    if not isinstance(result, dict):
        return None
    for measurement in result.get("measurements") or []:
        if measurement.get("threads") == row["threads"] and bool(
            measurement.get("xnnpack", True)
        ) == bool(row["xnnpack"]):
            return dict(measurement)
    return None


def group_of(row: dict[str, Any]) -> str | None:
    """The interleaved group job a row's model was measured in (None: measured on its own)."""
    group = row.get("group_id")
    if group:
        return str(group)
    result = row.get("result")
    group = result.get("group") if isinstance(result, dict) else None
    return str(group) if group else None


def latencies_of(row: dict[str, Any]) -> list[float]:
    measurement = measurement_of(row)
    return [float(x) for x in (measurement or {}).get("latencies_ms") or []]


def p50_interval(row: dict[str, Any]) -> list[float] | None:
    """[low, high] ms of the median: the stored columns, else from the raw runs, else None."""
    low, high = row.get("p50_lo_ms"), row.get("p50_hi_ms")
    if low is not None and high is not None:
        return [float(low), float(high)]
    measurement = measurement_of(row) or {}
    stored = (measurement.get("summary") or {}).get("p50_ci")
    if stored:
        return [float(stored[0]), float(stored[1])]
    values = [float(x) for x in measurement.get("latencies_ms") or []]
    if not values:
        return None
    from edgeprune.stats.latency import quantile_ci

    interval = quantile_ci(values, 0.5)
    return None if interval is None else [interval[0], interval[1]]


def p90_interval(row: dict[str, Any]) -> list[float] | None:
    """[low, high] ms of p90 from the stored columns or the agent's summary (None: too few runs)."""
    low, high = row.get("p90_lo_ms"), row.get("p90_hi_ms")
    if low is not None and high is not None:
        return [float(low), float(high)]
    stored = ((measurement_of(row) or {}).get("summary") or {}).get("p90_ci")
    return [float(stored[0]), float(stored[1])] if stored else None


def comparison(baseline: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """speedup (baseline p50 / this p50), its interval, verdict, method, runs_to_decide.

    Without raw runs on both sides (or with fewer than the statistics need) the speed-up is
    the ratio of the stored medians and interval and verdict are None.
    """
    ratio = baseline["p50_ms"] / other["p50_ms"] if baseline["p50_ms"] and other["p50_ms"] else None
    empty: dict[str, Any] = {"speedup": ratio} | {k: None for k in COMPARISON_FIELDS}
    base_m, other_m = measurement_of(baseline), measurement_of(other)
    if not (base_m and other_m and base_m.get("latencies_ms") and other_m.get("latencies_ms")):
        return empty
    from edgeprune.stats._checks import StatsInputError
    from edgeprune.stats.compare import compare_samples
    from edgeprune.stats.latency import LatencySample

    try:
        estimate = compare_samples(
            LatencySample.from_measurement(base_m, group_of(baseline)),
            LatencySample.from_measurement(other_m, group_of(other)),
            resamples=RESAMPLES,
        )
    except StatsInputError:  # e.g. a median of 0 ms (timer too coarse): no ratio to judge
        estimate = None
    if estimate is None:
        return empty
    found = estimate.to_dict()
    return {
        "speedup": found["speedup"],
        "speedup_ci": list(found["speedup_ci"]),
        "verdict": found["verdict"],
        "method": found["method"],
        "runs_to_decide": found["runs_to_decide"],
    }


def _ok(row: dict[str, Any] | None) -> bool:
    return bool(row and row["status"] == "ok" and row["p50_ms"])


def summary_rows(
    rows: list[dict[str, Any]], baseline_sha256: str | None = None
) -> list[dict[str, Any]]:
    """One line per measurement; `speedup` = baseline p50 / this p50 on the same device and
    threads (in the same run when the baseline was measured there), with interval and verdict.

    The baseline is `baseline_sha256` or, when not given, the first model in `rows`.
    """
    if not rows:
        return []
    baseline = baseline_sha256 or rows[0]["model_sha256"]
    in_run: dict[tuple[Any, str, int, bool], dict[str, Any]] = {}
    anywhere: dict[Key, dict[str, Any]] = {}
    for row in rows:
        if row["model_sha256"] == baseline and _ok(row):
            key = (row["device"], row["threads"], row["xnnpack"])
            in_run.setdefault((row.get("run_id"), *key), row)
            anywhere.setdefault(key, row)
    out = []
    for row in rows:
        key = (row["device"], row["threads"], row["xnnpack"])
        reference = in_run.get((row.get("run_id"), *key)) or anywhere.get(key)
        compared: dict[str, Any] = {"speedup": None} | {k: None for k in COMPARISON_FIELDS}
        if row is reference:
            compared["speedup"], compared["verdict"] = 1.0, "baseline"
        elif reference is not None and _ok(row):
            compared = comparison(reference, row)
        ok = row["status"] == "ok"
        out.append(
            {
                "run_id": row.get("run_id"),
                "measured_in": row.get("measured_in", row.get("run_id")),
                "model": row["model_name"],
                "model_sha256": row["model_sha256"],
                "baseline": row["model_sha256"] == baseline,
                "device": row["device"],
                "threads": row["threads"],
                "xnnpack": row["xnnpack"],
                "status": row["status"],
                "error": row.get("error"),
                "p50_ms": row["p50_ms"],
                "p50_ci_ms": p50_interval(row) if ok else None,
                "p90_ms": row["p90_ms"],
                "p90_ci_ms": p90_interval(row) if ok else None,
                "min_ms": row.get("min_ms"),
                "runs": row.get("runs"),
                **compared,
                "precision": (measurement_of(row) or {}).get("precision"),
                "size_bytes": row.get("size_bytes"),
                "accuracy": row.get("accuracy"),
                "accuracy_source": row.get("accuracy_source"),
                "runtime": row.get("runtime"),
                "runtime_version": row.get("runtime_version"),
                "sparse_path": ((row.get("result") or {}).get("sparse_path")) or None,
                "warnings": row.get("warnings") or [],
            }
        )
    order = {sha: i for i, sha in enumerate(dict.fromkeys(r["model_sha256"] for r in rows))}
    out.sort(key=lambda r: (r["device"], r["threads"], not r["xnnpack"], order[r["model_sha256"]]))
    return out


def compare_rows(rows: list[dict[str, Any]], run_ids: list[int]) -> list[dict[str, Any]]:
    """p50 (with interval and runs) of each (model, device, threads) in each run, and each later
    run against the first: `vs_first[run]` = speed-up, interval, verdict; the top-level
    `speedup`/`speedup_ci`/`verdict`/... are the last run's (first p50 / last p50).

    Different runs never share rounds, so these comparisons are independent ones.
    """
    table: dict[tuple[str, str, int, bool], dict[str, Any]] = {}
    kept: dict[tuple[str, str, int, bool], dict[str, dict[str, Any]]] = {}
    for row in rows:
        if row["status"] != "ok":
            continue
        key = (row["model_sha256"], row["device"], row["threads"], row["xnnpack"])
        entry = table.setdefault(
            key,
            {
                "model": row["model_name"],
                "model_sha256": row["model_sha256"],
                "device": row["device"],
                "threads": row["threads"],
                "xnnpack": row["xnnpack"],
                "p50_ms": {},
                "p50_ci_ms": {},
                "runs": {},
                "warnings": [],
            },
        )
        run = str(row["run_id"])
        entry["p50_ms"][run] = row["p50_ms"]
        entry["p50_ci_ms"][run] = p50_interval(row)
        entry["runs"][run] = row.get("runs")
        entry["warnings"] = list(dict.fromkeys(entry["warnings"] + (row.get("warnings") or [])))
        kept.setdefault(key, {})[run] = row
    out = []
    for key, entry in table.items():
        values = [entry["p50_ms"].get(str(r)) for r in run_ids]
        present = [v for v in values if v]
        entry["ratio_last_to_first"] = (
            values[-1] / values[0] if len(run_ids) > 1 and values[0] and values[-1] else None
        )
        entry["runs_present"] = len(present)
        first = kept[key].get(str(run_ids[0]))
        entry["vs_first"] = {}
        for later_id in run_ids[1:]:
            later = kept[key].get(str(later_id))
            if first is not None and later is not None and _ok(first) and _ok(later):
                entry["vs_first"][str(later_id)] = comparison(first, later)
        last = entry["vs_first"].get(str(run_ids[-1])) if len(run_ids) > 1 else None
        entry.update(last or ({"speedup": None} | {k: None for k in COMPARISON_FIELDS}))
        out.append(entry)
    out.sort(key=lambda e: (e["model"], e["device"], e["threads"], not e["xnnpack"]))
    return out
