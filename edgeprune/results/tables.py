"""Rows for people: model × device × threads with speed-up against a baseline model, and runs
side by side. Plain dicts in, plain dicts out, so the CLI, --json, CSV and HTML all agree.
"""

from __future__ import annotations

from typing import Any

Key = tuple[str, int, bool]  # (device, threads, xnnpack)


def summary_rows(
    rows: list[dict[str, Any]], baseline_sha256: str | None = None
) -> list[dict[str, Any]]:
    """One line per measurement; `speedup` = baseline p50 / this p50 on the same device and threads.

    The baseline is `baseline_sha256` or, when not given, the first model in `rows`.
    """
    if not rows:
        return []
    baseline = baseline_sha256 or rows[0]["model_sha256"]
    base_p50: dict[Key, float] = {}
    for row in rows:
        if row["model_sha256"] == baseline and row["status"] == "ok" and row["p50_ms"]:
            base_p50.setdefault((row["device"], row["threads"], row["xnnpack"]), row["p50_ms"])
    out = []
    for row in rows:
        reference = base_p50.get((row["device"], row["threads"], row["xnnpack"]))
        speedup = (
            reference / row["p50_ms"]
            if reference and row["p50_ms"] and row["status"] == "ok"
            else None
        )
        out.append(
            {
                "run_id": row.get("run_id"),
                "model": row["model_name"],
                "model_sha256": row["model_sha256"],
                "baseline": row["model_sha256"] == baseline,
                "device": row["device"],
                "threads": row["threads"],
                "xnnpack": row["xnnpack"],
                "status": row["status"],
                "error": row.get("error"),
                "p50_ms": row["p50_ms"],
                "p90_ms": row["p90_ms"],
                "speedup": speedup,
                "size_bytes": row.get("size_bytes"),
                "accuracy": row.get("accuracy"),
                "accuracy_source": row.get("accuracy_source"),
                "runtime": row.get("runtime"),
                "runtime_version": row.get("runtime_version"),
                "warnings": row.get("warnings") or [],
            }
        )
    order = {sha: i for i, sha in enumerate(dict.fromkeys(r["model_sha256"] for r in rows))}
    out.sort(key=lambda r: (r["device"], r["threads"], not r["xnnpack"], order[r["model_sha256"]]))
    return out


def compare_rows(rows: list[dict[str, Any]], run_ids: list[int]) -> list[dict[str, Any]]:
    """p50 of each (model, device, threads) in each run, and last run / first run."""
    table: dict[tuple[str, str, int, bool], dict[str, Any]] = {}
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
            },
        )
        entry["p50_ms"][str(row["run_id"])] = row["p50_ms"]
    out = []
    for entry in table.values():
        values = [entry["p50_ms"].get(str(r)) for r in run_ids]
        present = [v for v in values if v]
        entry["ratio_last_to_first"] = (
            values[-1] / values[0] if len(run_ids) > 1 and values[0] and values[-1] else None
        )
        entry["runs_present"] = len(present)
        out.append(entry)
    out.sort(key=lambda e: (e["model"], e["device"], e["threads"], not e["xnnpack"]))
    return out
