"""The recipe report: per device, every variant's latency, size and accuracy, the Pareto
front of latency vs accuracy, and the recommendation.

Built from a recipe run's record in the results store (`runs.options_json` of a run with
command `run`) plus the measurement rows it points at, so `edgeprune results report`
shows the same report later. Rendered as a terminal table, Markdown, JSON and HTML with
PNG plots (`report_html.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgeprune.recipes.formatting import kb, ms, num, pct
from edgeprune.recipes.recommend import Candidate, Recommendation, recommend, within_budget

RUN_COMMAND = "run"


@dataclass
class DeviceReport:
    device: str
    rows: list[dict[str, Any]]
    recommendation: Recommendation
    missing: dict[str, str] = field(default_factory=dict)  # variant -> why it has no numbers

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "rows": self.rows,
            "recommendation": self.recommendation.to_dict(),
            "missing": self.missing,
        }


@dataclass
class RecipeReport:
    name: str
    run_id: int | None
    budget: float | None
    baseline_top1: float | None
    reference: str | None  # the variant speed-ups are measured against
    variants: list[dict[str, Any]]
    devices: list[DeviceReport]
    device_errors: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "run_id": self.run_id,
            "accuracy_budget_points": self.budget,
            "baseline_top1": self.baseline_top1,
            "speedup_reference": self.reference,
            "variants": self.variants,
            "devices": [d.to_dict() for d in self.devices],
            "device_errors": self.device_errors,
        }

    def recommendations(self) -> dict[str, str | None]:
        """device -> recommended variant (None when nothing qualifies)."""
        return {
            d.device: d.recommendation.choice.variant if d.recommendation.choice else None
            for d in self.devices
        }

    def to_markdown(self, plots: dict[str, str] | None = None) -> str:
        lines = [f"# Recipe {self.name}" + (f" (run {self.run_id})" if self.run_id else ""), ""]
        lines.append(
            f"Baseline top-1 {pct(self.baseline_top1)}; accuracy budget "
            + ("none" if self.budget is None else f"{self.budget:g} point(s)")
            + f"; speed-up against {self.reference or '–'}."
        )
        failed = [v for v in self.variants if v.get("error")]
        for variant in failed:
            lines.append(f"- variant **{variant['name']}** failed: {variant['error']}")
        for name, error in self.device_errors.items():
            lines.append(f"- device **{name}** failed: {error}")
        for device in self.devices:
            rec = device.recommendation
            lines += ["", f"## {device.device}", ""]
            if rec.choice:
                lines.append(f"**Recommended: {rec.choice.variant}** — {rec.reason}.")
                if rec.runner_up:
                    lines.append(f"Runner-up: {rec.runner_up.variant} — {rec.runner_up_reason}.")
            else:
                lines.append(f"**No recommendation** — {rec.reason}.")
            lines.append(f"Pareto front (latency vs accuracy): {', '.join(rec.pareto) or '–'}.")
            lines += [
                "",
                "| " + " | ".join(TABLE_HEADERS) + " |",
                "|" + "---|" * len(TABLE_HEADERS),
            ]
            for row in device.rows:
                lines.append("| " + " | ".join(table_cells(row)) + " |")
            for missing, why in device.missing.items():
                lines.append(f"\n{missing}: not measured ({why})")
            if plots and device.device in plots:
                lines += ["", f"![{device.device}: latency vs accuracy]({plots[device.device]})"]
        return "\n".join(lines) + "\n"


TABLE_HEADERS = (
    "variant",
    "thr",
    "p50 ms",
    "p90 ms",
    "speed-up",
    "size",
    "gzip",
    "top-1 host",
    "top-1 device",
    "Δ top-1",
    "",
)
COMPACT_HEADERS = ("variant", "thr", "p50", "p90", "×", "size", "gzip", "top1", "dev", "Δ", "")


def table_cells(row: dict[str, Any], compact: bool = False) -> list[str]:
    """One table line as text (Markdown and HTML; `compact` for an 80-column terminal)."""
    marks = ("★" if row["recommended"] else "") + ("◆" if row["pareto"] else "")
    if not row["in_budget"]:
        marks += "✗" if compact else " over budget"
    if row["status"] != "ok":
        marks = f"error: {row['error'] or ''}"[:80]
    unit = not compact
    drop = row["drop_points"]
    gain = None if drop is None else (0.0 if abs(drop) < 0.05 else -drop)
    return [
        row["variant"],
        str(row["threads"]),
        ms(row["p50_ms"]),
        ms(row["p90_ms"]),
        num(row["speedup"], 2, "×"),
        kb(row["size_bytes"], "k" if compact else " kB"),
        kb(row["gzip_bytes"], "k" if compact else " kB"),
        pct(row["top1_host"], unit),
        pct(row["top1_device"], unit),
        "–" if gain is None else f"{gain:+.1f}",
        marks.strip(),
    ]


def build_report(
    record: dict[str, Any],
    rows: list[dict[str, Any]],
    run_id: int | None,
    budget: float | None = None,
    use_record_budget: bool = True,
) -> RecipeReport:
    """The report of one recipe run from its record and the store's measurement rows."""
    if use_record_budget:
        budget = record.get("accuracy_budget")
    baseline = record.get("baseline_top1")
    variants = record.get("variants", [])
    reference = next((v["name"] for v in variants if v.get("sha256")), None)
    devices = []
    for device in record.get("devices", []):
        refs = record.get("measurements", {}).get(device, {})
        per_variant: dict[str, list[dict[str, Any]]] = {}
        for variant in variants:
            ref = refs.get(variant["name"])
            per_variant[variant["name"]] = [
                r
                for r in rows
                if r["device"] == device
                and (
                    (r["run_id"] == ref[0] and r["job_id"] == ref[1])
                    if ref
                    else (r["run_id"] == run_id and r["model_sha256"] == variant.get("sha256"))
                )
            ]
        devices.append(_device_report(device, variants, per_variant, baseline, budget, reference))
    return RecipeReport(
        name=str(record.get("name", "recipe")),
        run_id=run_id,
        budget=budget,
        baseline_top1=baseline,
        reference=reference,
        variants=variants,
        devices=devices,
        device_errors=dict(record.get("device_errors", {})),
    )


def _device_report(
    device: str,
    variants: list[dict[str, Any]],
    per_variant: dict[str, list[dict[str, Any]]],
    baseline: float | None,
    budget: float | None,
    reference: str | None,
) -> DeviceReport:
    reference_p50 = {
        r["threads"]: r["p50_ms"]
        for r in per_variant.get(reference or "", [])
        if r["status"] == "ok" and r["p50_ms"]
    }
    candidates: list[Candidate] = []
    missing: dict[str, str] = {}
    table: list[dict[str, Any]] = []
    for variant in variants:
        name = variant["name"]
        measured = per_variant.get(name, [])
        if variant.get("error"):
            missing[name] = f"failed on the host: {variant['error']}"
            continue
        if not measured:
            missing[name] = "no measurement"
            continue
        host = variant.get("top1")
        for row in measured:
            device_top1 = row["accuracy"] if row.get("accuracy_source") == "device" else None
            ok = row["status"] == "ok" and row["p50_ms"] is not None
            base = reference_p50.get(row["threads"])
            table.append(
                {
                    "variant": name,
                    "threads": row["threads"],
                    "status": row["status"],
                    "error": row.get("error"),
                    "p50_ms": row["p50_ms"],
                    "p90_ms": row["p90_ms"],
                    "speedup": base / row["p50_ms"] if ok and base else None,
                    "size_bytes": row.get("size_bytes") or variant.get("size_bytes"),
                    "gzip_bytes": row.get("gzip_bytes") or variant.get("gzip_bytes"),
                    "top1_host": host,
                    "top1_device": device_top1,
                    "runtime": row.get("runtime"),
                    "warnings": row.get("warnings") or [],
                }
            )
        ok_rows = [r for r in measured if r["status"] == "ok" and r["p50_ms"] is not None]
        if ok_rows:
            best = min(ok_rows, key=lambda r: r["p50_ms"])
            device_top1 = best["accuracy"] if best.get("accuracy_source") == "device" else None
            candidates.append(
                Candidate(
                    variant=name,
                    p50_ms=float(best["p50_ms"]),
                    threads=int(best["threads"]),
                    accuracy=host if host is not None else device_top1,
                    p90_ms=best["p90_ms"],
                    gzip_bytes=best.get("gzip_bytes") or variant.get("gzip_bytes"),
                )
            )
    rec = recommend(device, candidates, baseline, budget)
    front = set(rec.pareto)
    by_name = {c.variant: c for c in candidates}
    for row in table:
        candidate = by_name.get(row["variant"])
        row["drop_points"] = candidate.drop_points(baseline) if candidate else None
        row["pareto"] = row["variant"] in front and row["status"] == "ok"
        row["in_budget"] = candidate is None or within_budget(candidate, baseline, budget)
        row["recommended"] = bool(
            rec.choice
            and rec.choice.variant == row["variant"]
            and rec.choice.threads == row["threads"]
        )
    return DeviceReport(device, table, rec, missing)


def referenced_runs(record: dict[str, Any], run_id: int | None) -> list[int]:
    """The results runs whose measurements a recipe run's report uses."""
    ids = {int(ref[0]) for per in record.get("measurements", {}).values() for ref in per.values()}
    if run_id is not None:
        ids.add(run_id)
    return sorted(ids)


def recipe_report_for_run(
    store: Any, run_id: int, budget: float | None = None
) -> RecipeReport | None:
    """The report of a stored recipe run (None when the run was not made by `edgeprune run`)."""
    info = store.run_info(run_id)
    if info is None or info["command"] != RUN_COMMAND:
        return None
    record = info["options"]
    rows = store.measurements(run_ids=referenced_runs(record, run_id))
    return build_report(record, rows, run_id, budget, use_record_budget=budget is None)
