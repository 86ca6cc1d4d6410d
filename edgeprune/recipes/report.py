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

from edgeprune.recipes.constraints import PERCENTILES, ConstraintOptions
from edgeprune.recipes.correctness import unpack
from edgeprune.recipes.formatting import kb, ms, num, pct
from edgeprune.recipes.metric import TOP1, budget_text, drop_text, metric_from, value_text
from edgeprune.recipes.recommend import Baseline, Candidate, Recommendation, recommend
from edgeprune.results import wording
from edgeprune.results.store import RECIPE_COMMAND
from edgeprune.tasks.base import FRACTION, Metric
from edgeprune.text import points
from edgeprune.warning_codes import legend

RUN_COMMAND = RECIPE_COMMAND


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
    baseline_samples: int | None = None
    metric: Metric = TOP1  # what decided (`baseline_top1` holds its baseline value)

    @property
    def by_top1(self) -> bool:
        return self.metric.name == TOP1.name

    def to_dict(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if not self.by_top1:
            extra = {
                "metric": {
                    "name": self.metric.name,
                    "label": self.metric.label,
                    "higher_is_better": self.metric.higher_is_better,
                    "unit": self.metric.unit,
                },
                "baseline_score": self.baseline_top1,
                "budget": self.budget,
            }
        return {
            **extra,
            "name": self.name,
            "run_id": self.run_id,
            "accuracy_budget_points": self.budget,
            "baseline_top1": self.baseline_top1 if self.by_top1 else None,
            "baseline_samples": self.baseline_samples,
            "baseline_top1_ci": list(self.baseline_ci) if self.baseline_ci else None,
            "speedup_reference": self.reference,
            "variants": [_public_variant(v) for v in self.variants],
            "devices": [d.to_dict() for d in self.devices],
            "device_errors": self.device_errors,
            "warning_legend": [w.to_dict() for w in legend(warning_codes(self))],
        }

    @property
    def baseline_ci(self) -> tuple[float, float] | None:
        """Wilson 95 % interval of the baseline's top-1 (None without a sample count)."""
        if self.baseline_top1 is None or not self.baseline_samples or not self.by_top1:
            return None
        from edgeprune.stats.accuracy import wilson_ci

        return wilson_ci(round(self.baseline_top1 * self.baseline_samples), self.baseline_samples)

    def baseline_text(self) -> str:
        """'98.1 % (95 % 96.0–99.1 %, n=359)'."""
        ci = self.baseline_ci
        if not self.by_top1:
            return value_text(self.metric, self.baseline_top1)
        if ci is None:
            return pct(self.baseline_top1)
        return (
            f"{pct(self.baseline_top1)} (95 % {pct(ci[0], False)}–{pct(ci[1])}, "
            f"n={self.baseline_samples})"
        )

    def headline(self) -> str:
        """'Baseline top-1 98.1 % (...); accuracy budget 1 point(s), judged at 95 %' or, for
        another metric, 'Baseline RMSE 0.6150 (lower is better); budget 0.0123 RMSE'."""
        if self.by_top1:
            return f"Baseline top-1 {self.baseline_text()}; accuracy budget " + (
                "none" if self.budget is None else f"{self.budget:g} point(s), judged at 95 %"
            )
        better = "higher" if self.metric.higher_is_better else "lower"
        budget = "none" if self.budget is None else budget_text(self.metric, self.budget)
        if self.budget is not None and self.metric.unit == FRACTION:
            budget = f"{self.budget:g} point(s)"
        return (
            f"Baseline {self.metric.label} {self.baseline_text()} ({better} is better); "
            f"budget {budget}"
        )

    def legend(self) -> str:
        """LEGEND, naming the deciding metric when it is not top-1."""
        if self.by_top1:
            return LEGEND
        return LEGEND.replace(
            "accuracy: the drop against the baseline at 95 %, on the same samples",
            f"budget: the {self.metric.label} drop against the baseline at 95 % (paired "
            "bootstrap over the same samples; a point estimate where none)",
        )

    def decisions(self) -> list[dict[str, Any]]:
        """Per device: choice, runner_up, reason, excluded (what `run --json` leads with)."""
        return [d.recommendation.decision() for d in self.devices]

    def recommendations(self) -> dict[str, str | None]:
        """device -> recommended variant (None when nothing qualifies)."""
        return {
            d.device: d.recommendation.choice.variant if d.recommendation.choice else None
            for d in self.devices
        }

    def to_markdown(self, plots: dict[str, str] | None = None) -> str:
        lines = [f"# Recipe {self.name}" + (f" (run {self.run_id})" if self.run_id else ""), ""]
        lines.append(f"{self.headline()}; speed-up against {self.reference or '–'}.")
        failed = [v for v in self.variants if v.get("error")]
        for variant in failed:
            lines.append(f"- variant **{variant['name']}** failed: {variant['error']}")
        for name, error in self.device_errors.items():
            lines.append(f"- device **{name}** failed: {error}")
        for device in self.devices:
            rec = device.recommendation
            lines += ["", f"## {device.device}", ""]
            lines.append(f"Constraints: {describe_limits(rec.limits)}.")
            lines.append("")
            if rec.choice:
                lines.append(f"**Recommended: {rec.choice.variant}** — {rec.reason}.")
                if rec.runner_up:
                    lines.append(f"Runner-up: {rec.runner_up.variant} — {rec.runner_up_reason}.")
            else:
                lines.append(f"**No recommendation** — {rec.reason}.")
            for note in rec.notes:
                lines.append(f"- note: {note}")
            for exclusion in rec.excluded:
                lines.append(f"- excluded: {exclusion.text()}")
            lines.append("")
            what = "accuracy" if self.by_top1 else self.metric.label
            lines.append(f"Pareto front (latency vs {what}): {', '.join(rec.pareto) or '–'}.")
            headers = table_headers(self.metric)
            lines += [
                "",
                "| " + " | ".join(headers) + " |",
                "|" + "---|" * len(headers),
            ]
            for row in device.rows:
                lines.append("| " + " | ".join(table_cells(row, metric=self.metric)) + " |")
            for missing, why in device.missing.items():
                lines.append(f"\n{missing}: not measured ({why})")
            if plots and device.device in plots:
                lines += ["", f"![{device.device}: latency vs accuracy]({plots[device.device]})"]
        lines += ["", self.legend() + "."]
        warnings = legend(warning_codes(self))
        if warnings:
            lines += ["", "Warnings:", ""]
            lines += [f"- {w.line()}" for w in warnings]
        return "\n".join(lines) + "\n"


def _public_variant(variant: dict[str, Any]) -> dict[str, Any]:
    """A variant's record without the per-sample bits (kept in the store, not in --json)."""
    return {k: v for k, v in variant.items() if k != "correct"}


def describe_limits(limits: dict[str, Any]) -> str:
    """The constraints a recommendation applied, as text ('none' when there are none)."""
    if not limits:
        return "none"
    return ConstraintOptions.create(**limits).describe()


TABLE_HEADERS = (
    "variant",
    "thr",
    "p50 ms (95 %)",
    "p90 ms",
    "runs",
    "speed-up (95 %)",
    "verdict",
    "size",
    "gzip",
    "peak MB",
    "top-1 host (95 %)",
    "top-1 device",
    "Δ top-1 (95 %)",
    "accuracy",
    "",
)
COMPACT_HEADERS = (
    "variant",
    "thr",
    "p50",
    "±",
    "p90",
    "×",
    "verdict",
    "gzip",
    "top1",
    "Δ",
    "acc",
    "",
)
VERDICT_WORDS = {
    "baseline": "baseline",
    "faster": "faster",
    "slower": "slower",
    "indistinguishable": "same",
}
ACCURACY_WORDS = {
    "within_budget": "within budget",
    "over_budget": "over budget",
    "cannot_tell": "cannot tell",
    "no_budget": "no budget",
}
ACCURACY_SHORT = {"within_budget": "ok", "over_budget": "over", "cannot_tell": "?", "no_budget": ""}


def table_headers(metric: Metric = TOP1, compact: bool = False) -> tuple[str, ...]:
    """The table's headers, naming the deciding metric ('RMSE host', 'Δ mIoU')."""
    headers = COMPACT_HEADERS if compact else TABLE_HEADERS
    if metric.name == TOP1.name:
        return headers
    label = metric.label + (" %" if metric.unit == FRACTION and not compact else "")
    named = {
        "top-1 host (95 %)": f"{label} host",
        "top-1 device": f"{metric.label} device",
        "Δ top-1 (95 %)": f"Δ {metric.label} (+ = better)",
        "top1": metric.label,
        "accuracy": "budget",
        "acc": "bud",
    }
    return tuple(named.get(h, h) for h in headers)


def _points(value: float) -> str:
    """'+0.60' (never '-0.00')."""
    return points(value, signed=True)


def _range(ci: list[float] | tuple[float, float] | None, fmt: str = "{:.2f}") -> str:
    return "" if not ci else f" ({fmt.format(ci[0])}–{fmt.format(ci[1])})"


def table_cells(row: dict[str, Any], compact: bool = False, metric: Metric = TOP1) -> list[str]:
    """One table line as text (Markdown and HTML; `compact` for an 80-column terminal)."""
    if metric.name != TOP1.name:
        return _metric_cells(row, compact, metric)
    marks = ("★" if row["recommended"] else "") + ("◆" if row["pareto"] else "")
    if row.get("breaks"):
        marks += "✗" if compact else " excluded: " + ", ".join(row["breaks"])
    if row["status"] != "ok":
        marks = f"error: {row['error'] or ''}"[:80]
    unit = not compact
    drop = row["drop_points"]
    gain = None if drop is None else (0.0 if abs(drop) < 0.005 else -drop)
    gain_text = "–" if gain is None else _points(gain)
    verdict = VERDICT_WORDS.get(row.get("verdict") or "", "–")
    accuracy = row.get("accuracy_verdict")
    speedup = num(row["speedup"], 2, "×")
    if compact:
        spread = row.get("p50_half_width")
        return [
            row["variant"],
            str(row["threads"]),
            ms(row["p50_ms"]),
            "–" if spread is None else f"{spread * 100:.{1 if spread < 0.1 else 0}f}%",
            ms(row["p90_ms"]),
            num(row["speedup"], 2),
            verdict,
            kb(row["gzip_bytes"], "k"),
            pct(row["top1_host"] if row["top1_host"] is not None else row["top1_device"], False),
            gain_text,
            ACCURACY_SHORT.get(accuracy or "", "–"),
            marks.strip(),
        ]
    p50_ci = row.get("p50_ci")
    drop_ci = row.get("drop_ci")
    top1_ci = row.get("top1_ci")
    peak = row.get("peak_rss_kb")
    return [
        row["variant"],
        str(row["threads"]),
        ms(row["p50_ms"]) + ("" if not p50_ci else f" ({ms(p50_ci[0])}–{ms(p50_ci[1])})"),
        ms(row["p90_ms"]),
        "–" if row.get("runs") is None else str(row["runs"]),
        speedup + _range(row.get("speedup_ci")),
        verdict,
        kb(row["size_bytes"], " kB"),
        kb(row["gzip_bytes"], " kB"),
        "–" if not peak else f"{peak / 1024:.1f}",
        pct(row["top1_host"], unit)
        + ("" if not top1_ci else f" ({pct(top1_ci[0], False)}–{pct(top1_ci[1], False)})"),
        pct(row["top1_device"], unit),
        gain_text + ("" if not drop_ci else f" ({_points(-drop_ci[1])} to {_points(-drop_ci[0])})"),
        ACCURACY_WORDS.get(accuracy or "", "–"),
        marks.strip(),
    ]


def _metric_cells(row: dict[str, Any], compact: bool, metric: Metric) -> list[str]:
    """As `table_cells`'s top-1 columns, for any other deciding metric (no interval yet)."""
    cells = table_cells(row, compact)
    host = row.get("score_host")
    drop = row["drop_points"]
    gain = "–" if drop is None else drop_text(metric, 0.0 if abs(drop) < 1e-12 else -drop, True)
    shown = value_text(metric, host, unit=not compact)
    ci = row.get("drop_ci")
    if compact:
        cells[8], cells[9] = shown, gain
    else:
        spread = (
            ""
            if not ci
            else f" ({drop_text(metric, -ci[1], True)} to {drop_text(metric, -ci[0], True)})"
        )
        cells[10], cells[11], cells[12] = shown, "–", gain + spread
    return cells


LEGEND = (
    "★ recommended · ◆ Pareto front · ✗ excluded (a constraint or the accuracy budget) · "
    "verdict: speed-up against the reference at 95 % (same = indistinguishable) · "
    "accuracy: the drop against the baseline at 95 %, on the same samples"
)


def build_report(
    record: dict[str, Any],
    rows: list[dict[str, Any]],
    run_id: int | None,
    budget: float | None = None,
    use_record_budget: bool = True,
    limits: dict[str, ConstraintOptions] | ConstraintOptions | None = None,
) -> RecipeReport:
    """The report of one recipe run from its record and the store's measurement rows.

    `rows` should carry `result` (`store.measurements(..., with_json=True)`) for the
    latencies the intervals and verdicts rest on; without it they are left out.
    `limits` (one for all devices, or per device) replace the recorded constraints.
    """
    if use_record_budget:
        budget = record.get("accuracy_budget")
    metric = metric_from(record.get("metric"))
    by_top1 = metric.name == TOP1.name
    baseline = record.get("baseline_top1") if by_top1 else record.get("baseline_score")
    base = Baseline(
        baseline,
        record.get("baseline_samples"),
        unpack(record.get("baseline_correct")) if by_top1 else None,
        record.get("baseline_classes"),
        metric,
    )
    variants = record.get("variants", [])
    reference = next((v["name"] for v in variants if v.get("sha256")), None)
    recorded = record.get("constraints") or {}
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
        if isinstance(limits, ConstraintOptions):
            device_limits = limits
        elif isinstance(limits, dict) and device in limits:
            device_limits = limits[device]
        else:
            device_limits = ConstraintOptions.create(**(recorded.get(device) or {}))
        found = _device_report(
            device, variants, per_variant, base, budget, reference, device_limits
        )
        measured = [r for kept in per_variant.values() for r in kept]
        found.recommendation.notes.extend(wording.sparse_path_notes(measured))
        devices.append(found)
    return RecipeReport(
        name=str(record.get("name", "recipe")),
        run_id=run_id,
        budget=budget,
        baseline_top1=baseline,
        reference=reference,
        variants=variants,
        devices=devices,
        device_errors=dict(record.get("device_errors", {})),
        baseline_samples=base.samples,
        metric=metric,
    )


def _measurement_of(row: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The stored Measurement dict behind a row (same threads and xnnpack) and its group."""
    result = row.get("result")
    if not isinstance(result, dict):
        return None, None
    for measurement in result.get("measurements") or []:
        if measurement.get("threads") == row["threads"] and bool(
            measurement.get("xnnpack", True)
        ) == bool(row.get("xnnpack", True)):
            return measurement, result.get("group")
    return None, result.get("group")


def latency_figures(row: dict[str, Any]) -> tuple[Any, dict[int, tuple[float, float] | None]]:
    """(LatencySample or None, percentile -> 95 % interval) of a row's measurement.

    The agent's own intervals (over every run) are used when present, else they are
    computed from the kept latencies.
    """
    from edgeprune.stats.latency import LatencySample, quantile_ci

    measurement, group = _measurement_of(row)
    cis: dict[int, tuple[float, float] | None] = {}
    if measurement is None or row["status"] != "ok":
        return None, cis
    from edgeprune.stats import StatsInputError

    latencies = measurement.get("latencies_ms") or []
    summary = measurement.get("summary") or {}
    try:
        for q in PERCENTILES:
            given = summary.get(f"p{q}_ci")
            if given:
                cis[q] = (float(given[0]), float(given[1]))
            elif latencies:
                cis[q] = quantile_ci(latencies, q / 100)
            else:
                cis[q] = None
        sample = LatencySample.from_measurement(measurement, group) if latencies else None
    except (StatsInputError, TypeError, ValueError):  # a damaged record: no intervals, no verdict
        return None, {}
    return sample, cis


def _device_report(
    device: str,
    variants: list[dict[str, Any]],
    per_variant: dict[str, list[dict[str, Any]]],
    baseline: Baseline,
    budget: float | None,
    reference: str | None,
    limits: ConstraintOptions,
) -> DeviceReport:
    from edgeprune.stats.compare import compare_samples

    figures = {id(r): latency_figures(r) for rows in per_variant.values() for r in rows}
    reference_rows = {
        r["threads"]: r
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
        by_top1 = baseline.metric.name == TOP1.name
        host = variant.get("top1") if by_top1 else variant.get("score")
        correct = unpack(variant.get("correct")) if by_top1 else None
        for row in measured:
            device_top1 = row["accuracy"] if row.get("accuracy_source") == "device" else None
            ok = row["status"] == "ok" and row["p50_ms"] is not None
            sample, cis = figures[id(row)]
            base_row = reference_rows.get(row["threads"])
            speedup = verdict = speedup_ci = None
            if ok and base_row is not None:
                speedup = base_row["p50_ms"] / row["p50_ms"]
                if base_row is row or (name == reference):
                    verdict = "baseline"
                else:
                    base_sample = figures[id(base_row)][0]
                    estimate = (
                        compare_samples(base_sample, sample)
                        if base_sample is not None and sample is not None
                        else None
                    )
                    if estimate is not None:
                        speedup, speedup_ci, verdict = (
                            estimate.speedup,
                            list(estimate.ci),
                            estimate.verdict,
                        )
            p50_ci = cis.get(50)
            table.append(
                {
                    "variant": name,
                    "threads": row["threads"],
                    "status": row["status"],
                    "error": row.get("error"),
                    "p50_ms": row["p50_ms"],
                    "p50_ci": list(p50_ci) if p50_ci else None,
                    "p50_half_width": _half_width(row["p50_ms"], p50_ci),
                    "p90_ms": row["p90_ms"],
                    "p90_ci": _as_list(cis.get(90)),
                    "runs": row.get("runs"),
                    "speedup": speedup,
                    "speedup_ci": speedup_ci,
                    "verdict": verdict,
                    "size_bytes": row.get("size_bytes") or variant.get("size_bytes"),
                    "gzip_bytes": row.get("gzip_bytes") or variant.get("gzip_bytes"),
                    "peak_rss_kb": row.get("peak_rss_kb"),
                    "top1_host": host if by_top1 else None,
                    "top1_device": device_top1 if by_top1 else None,
                    **({} if by_top1 else {"score_host": host}),
                    "runtime": row.get("runtime"),
                    "warnings": row.get("warnings") or [],
                }
            )
        ok_rows = [r for r in measured if r["status"] == "ok" and r["p50_ms"] is not None]
        if ok_rows:
            best = min(ok_rows, key=lambda r: r["p50_ms"])
            device_top1 = best["accuracy"] if best.get("accuracy_source") == "device" else None
            sample, cis = figures[id(best)]
            candidates.append(
                Candidate(
                    variant=name,
                    p50_ms=float(best["p50_ms"]),
                    threads=int(best["threads"]),
                    accuracy=host if host is not None or not by_top1 else device_top1,
                    p90_ms=best["p90_ms"],
                    gzip_bytes=best.get("gzip_bytes") or variant.get("gzip_bytes"),
                    size_bytes=best.get("size_bytes") or variant.get("size_bytes"),
                    p99_ms=best.get("p99_ms"),
                    latency_ci=cis,
                    peak_rss_kb=best.get("peak_rss_kb"),
                    sample=sample,
                    accuracy_samples=variant.get("samples")
                    if host is not None and by_top1
                    else None,
                    correct=correct if host is not None else None,
                    drop_ci=tuple(variant["drop_ci"]) if variant.get("drop_ci") else None,
                )
            )
    rec = recommend(device, candidates, baseline, budget, limits)
    front = set(rec.pareto)
    by_name = {c.variant: c for c in candidates}
    excluded = {e.variant: e for e in rec.excluded}
    for row in table:
        candidate = by_name.get(row["variant"])
        info = rec.accuracy.get(row["variant"]) or {}
        row["drop_points"] = (
            candidate.drop_points(baseline.accuracy, baseline.metric) if candidate else None
        )
        row["drop_ci"] = info.get("drop_ci")
        row["top1_ci"] = info.get("top1_ci")
        row["accuracy_verdict"] = info.get("verdict")
        exclusion = excluded.get(row["variant"])
        row["breaks"] = [b.constraint for b in exclusion.breaks] if exclusion else []
        row["pareto"] = row["variant"] in front and row["status"] == "ok"
        row["in_budget"] = "accuracy_budget" not in row["breaks"]
        row["recommended"] = bool(
            rec.choice
            and rec.choice.variant == row["variant"]
            and rec.choice.threads == row["threads"]
        )
    return DeviceReport(device, table, rec, missing)


def _as_list(ci: tuple[float, float] | None) -> list[float] | None:
    return None if ci is None else [ci[0], ci[1]]


def _half_width(point: float | None, ci: tuple[float, float] | None) -> float | None:
    if not point or not ci:
        return None
    return max(point - ci[0], ci[1] - point) / point


def warning_codes(report: RecipeReport) -> list[str]:
    """Every warning code any row of the report carries (for the legend under the tables)."""
    codes: dict[str, None] = {}
    for device in report.devices:
        for row in device.rows:
            for warning in row.get("warnings") or []:
                code = warning.get("code") if isinstance(warning, dict) else str(warning)
                if code:
                    codes[str(code)] = None
    return list(codes)


def referenced_runs(record: dict[str, Any], run_id: int | None) -> list[int]:
    """The results runs whose measurements a recipe run's report uses."""
    ids = {int(ref[0]) for per in record.get("measurements", {}).values() for ref in per.values()}
    if run_id is not None:
        ids.add(run_id)
    return sorted(ids)


def recipe_outcome(
    device_errors: dict[str, str], failures: dict[str, str], measured: int
) -> tuple[str, str | None]:
    """(status, error) the store keeps for a finished recipe run: `failed` with the first
    device or variant that failed, `cached` when every measurement was reused, else `ok`."""
    problems = [f"{name}: {error}" for name, error in [*device_errors.items(), *failures.items()]]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return "failed", problems[0] + more
    return ("cached", None) if measured == 0 else ("ok", None)


def recipe_report_for_run(
    store: Any, run_id: int, budget: float | None = None
) -> RecipeReport | None:
    """The report of a stored recipe run (None when the run was not made by `edgeprune run`)."""
    info = store.run_info(run_id)
    if info is None or info["command"] != RUN_COMMAND:
        return None
    record = info["options"]
    rows = store.measurements(run_ids=referenced_runs(record, run_id), with_json=True)
    return build_report(record, rows, run_id, budget, use_record_budget=budget is None)
