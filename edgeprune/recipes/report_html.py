"""The recipe report as files: Markdown and HTML, with matplotlib PNGs (also saved alone).

Per device one plot of accuracy against latency: every variant, the Pareto front as a
line, the budget as a shaded band, the recommendation starred. One more plot puts the
variants' latency side by side across devices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeprune.files import atomic_output
from edgeprune.html import esc, page, png_img, table
from edgeprune.recipes.metric import TOP1, axis_label, budget_text
from edgeprune.recipes.report import (
    DeviceReport,
    RecipeReport,
    describe_limits,
    table_cells,
    table_headers,
    warning_codes,
)
from edgeprune.results.plots import figure_png, place_labels, pyplot
from edgeprune.tasks.base import FRACTION, Metric


def pareto_png(
    device: DeviceReport,
    baseline: float | None,
    budget: float | None,
    metric: Metric = TOP1,
) -> bytes | None:
    """The deciding metric against p50 latency for one device; None when no variant has both."""
    by_top1 = metric.name == TOP1.name
    found = [
        (
            r["p50_ms"],
            (r["top1_host"] if r["top1_host"] is not None else r["top1_device"])
            if by_top1
            else r.get("score_host"),
            r,
        )
        for r in device.rows
        if r["status"] == "ok" and r["p50_ms"] is not None
    ]
    scale = 100.0 if metric.unit == FRACTION else 1.0
    points: list[tuple[float, float, dict[str, Any]]] = [
        (float(x), float(y) * scale, r) for x, y, r in found if y is not None
    ]
    if not points:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    try:
        base = baseline * scale if baseline is not None else None
        sign = 1.0 if metric.higher_is_better else -1.0
        ys = [y for _, y, _ in points] + ([base] if base is not None else [])
        limit = base - sign * budget if base is not None and budget is not None else None
        spread = max(ys) - min(ys)
        near = 2.0 if metric.unit == FRACTION else max(spread, abs(base or 0.0) * 0.05)
        if limit is not None and min(ys) - near <= limit <= max(ys) + near:
            ys.append(limit)  # show the budget line when it is near the points
        pad = max(0.3 if metric.unit == FRACTION else 1e-9, 0.15 * (max(ys) - min(ys)))
        low, high = min(ys) - pad, max(ys) + pad
        if base is not None:
            ax.axhline(base, color="#555", linestyle=":", linewidth=1, label="baseline")
        if limit is not None:
            within = (
                f"{budget:g} point(s)" if metric.unit == FRACTION else budget_text(metric, budget)
            )
            band = (max(limit, low), high) if metric.higher_is_better else (low, min(limit, high))
            ax.axhspan(
                *band,
                color="#3a6fd8",
                alpha=0.07,
                label=f"within {within} of the baseline",
            )
            if low <= limit <= high:
                ax.axhline(limit, color="#3a6fd8", linestyle="--", linewidth=1)
        front = sorted((x, y) for x, y, r in points if r["pareto"])
        if front:
            ax.step(
                [p[0] for p in front],
                [p[1] for p in front],
                where="post",
                color="#d8823a",
                linewidth=1.5,
                label="Pareto front",
            )
        labelled = []
        for x, y, row in points:
            label = f"{row['variant']}" + (f" ·{row['threads']}t" if _many_threads(device) else "")
            labelled.append((x, y, label))
            if row["recommended"]:
                ax.scatter(
                    [x], [y], marker="*", s=260, color="#2a9d3a", zorder=5, label="recommended"
                )
            color = "#aaaaaa" if row.get("breaks") else "#3a6fd8"
            ax.scatter([x], [y], s=36, color=color, zorder=6)
        ax.set_xlabel("p50 latency (ms), lower is better")
        ax.set_ylabel(axis_label(metric))
        what = "accuracy" if by_top1 else metric.label
        ax.set_title(f"{device.device}: {what} against latency")
        ax.set_xlim(left=0, right=max(x for x, _, _ in points) * 1.25)
        ax.set_ylim(low, high)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        place_labels(ax, labelled, fontsize=8)
        return figure_png(fig, layout=False)
    finally:
        plt.close(fig)


def latency_png(report: RecipeReport) -> bytes | None:
    """p50 latency of every variant, one bar group per variant, one bar per device."""
    names = [v["name"] for v in report.variants]
    series: dict[str, list[float]] = {}
    for device in report.devices:
        best: dict[str, float] = {}
        for row in device.rows:
            if row["status"] == "ok" and row["p50_ms"] is not None:
                best[row["variant"]] = min(best.get(row["variant"], float("inf")), row["p50_ms"])
        if best:
            series[device.device] = [best.get(n, 0.0) for n in names]
    if not series:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    try:
        width = 0.8 / len(series)
        for i, (device_name, values) in enumerate(series.items()):
            xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(names))]
            ax.bar(xs, values, width=width, label=device_name)
        ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("p50 latency (ms, best thread count)")
        ax.set_title(f"{report.name}: latency by variant")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
        return figure_png(fig)
    finally:
        plt.close(fig)


def _many_threads(device: DeviceReport) -> bool:
    return len({r["threads"] for r in device.rows}) > 1


def report_plots(report: RecipeReport) -> list[tuple[str, str, bytes]]:
    """(file stem, title, png) for every plot the report has."""
    plots = []
    for device in report.devices:
        png = pareto_png(device, report.baseline_top1, report.budget, report.metric)
        what = "accuracy" if report.by_top1 else report.metric.label
        if png:
            plots.append(
                (
                    f"pareto-{_safe(device.device)}",
                    f"{device.device}: {what} against latency",
                    png,
                )
            )
    bars = latency_png(report)
    if bars:
        plots.append(("latency", "Latency by variant", bars))
    return plots


def render_html(report: RecipeReport, plots: list[tuple[str, str, bytes]]) -> str:
    """The recipe's page: per device the recommendation, the table and its plot."""
    by_stem = {stem: (title, png) for stem, title, png in plots}
    body = [
        f"<h1>Recipe {esc(report.name)}</h1>",
        "<p class='note'>"
        + esc(
            _headline(report)
            + f" · speed-up against {report.reference or '–'}"
            + (f" · results run {report.run_id}" if report.run_id else "")
        )
        + "</p>",
    ]
    for variant in report.variants:
        if variant.get("error"):
            body.append(
                f"<p class='note'>variant {esc(variant['name'])} failed: {esc(variant['error'])}</p>"
            )
    for name, error in report.device_errors.items():
        body.append(f"<p class='note'>device {esc(name)} failed: {esc(error)}</p>")
    for device in report.devices:
        body += _device_section(device, by_stem, report.metric)
    if "latency" in by_stem:
        body.append("<h2>Latency by variant</h2>" + png_img(*by_stem["latency"]))
    body.append(
        "<p class='note'>"
        + esc(
            report.legend()
            + " · ◆ = no variant is both faster and "
            + ("more accurate" if report.by_top1 else f"better in {report.metric.label}")
        )
        + "</p>"
    )
    from edgeprune.warning_codes import legend

    warnings = legend(warning_codes(report))
    if warnings:
        body.append("<h2>Warnings</h2><ul>")
        body += [
            f"<li><b>{esc(w.code)}</b>: {esc(w.meaning)}. Fix: {esc(w.fix)}</li>" for w in warnings
        ]
        body.append("</ul>")
    return page(f"edgeprune: {report.name}", body)


def _device_section(
    device: DeviceReport, by_stem: dict[str, tuple[str, bytes]], metric: Metric = TOP1
) -> list[str]:
    """One device's recommendation box, table, unmeasured variants and accuracy plot."""
    rec = device.recommendation
    lines = [f"<h2>{esc(device.device)}</h2><div class='rec'>"]
    lines.append(f"<p>Constraints: {esc(describe_limits(rec.limits))}</p>")
    if rec.choice:
        lines.append(f"<p><b>Recommended: {esc(rec.choice.variant)}</b> — {esc(rec.reason)}.</p>")
        if rec.runner_up:
            lines.append(
                f"<p>Runner-up: {esc(rec.runner_up.variant)} — {esc(rec.runner_up_reason)}.</p>"
            )
    else:
        lines.append(f"<p><b>No recommendation</b> — {esc(rec.reason)}.</p>")
    if rec.excluded or rec.notes:
        lines.append("<ul>")
        lines += [f"<li>excluded: {esc(e.text())}</li>" for e in rec.excluded]
        lines += [f"<li>note: {esc(n)}</li>" for n in rec.notes]
        lines.append("</ul>")
    lines.append(f"<p>Pareto front: {esc(', '.join(rec.pareto) or '–')}</p></div>")
    rows = ((_row_class(row), table_cells(row, metric=metric)) for row in device.rows)
    lines += table(table_headers(metric), rows, text_columns=(0,))
    for variant, why in device.missing.items():
        lines.append(f"<p class='note'>{esc(variant)}: not measured ({esc(why)})</p>")
    stem = f"pareto-{_safe(device.device)}"
    if stem in by_stem:
        lines.append(png_img(*by_stem[stem]))
    return lines


def _row_class(row: dict[str, Any]) -> str:
    """error, pick (the recommendation), "" (within budget) or over (outside it)."""
    if row["status"] != "ok":
        return "error"
    if row["recommended"]:
        return "pick"
    return "over" if row.get("breaks") else ""


def write_report_files(report: RecipeReport, folder: Path) -> dict[str, Path]:
    """report.md, report.html and plots/*.png in `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    plots = report_plots(report)
    written: dict[str, Path] = {}
    plot_dir = folder / "plots"
    plot_dir.mkdir(exist_ok=True)
    links: dict[str, str] = {}
    for stem, _title, png in plots:
        path = plot_dir / f"{stem}.png"
        _write_bytes(path, png)
        written[stem] = path
        if stem.startswith("pareto-"):
            device = next(
                (d.device for d in report.devices if f"pareto-{_safe(d.device)}" == stem), None
            )
            if device:
                links[device] = f"plots/{stem}.png"
    markdown = folder / "report.md"
    _write_bytes(markdown, report.to_markdown(links).encode())
    page = folder / "report.html"
    _write_bytes(page, render_html(report, plots).encode())
    written.update({"markdown": markdown, "html": page})
    return written


def write_html(report: RecipeReport, target: Path) -> Path:
    """Only the HTML page (what `results report --html OUT` writes)."""
    _write_bytes(target, render_html(report, report_plots(report)).encode())
    return target


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def _headline(report: RecipeReport) -> str:
    """'baseline top-1 98.1 % (...) · budget 1 point(s)' (the deciding metric's name otherwise)."""
    if report.by_top1:
        return f"baseline top-1 {report.baseline_text()} · budget " + (
            "none" if report.budget is None else f"{report.budget:g} point(s)"
        )
    return report.headline()
