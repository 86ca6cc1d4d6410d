"""Plots for the report: latency against size and against accuracy, one series per device.

matplotlib is imported here only, lazily, with the Agg backend: commands that do not
plot never pay for it, and no display is needed.
"""

from __future__ import annotations

import io
from typing import Any


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend: no display on a build host or in CI."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig: Any) -> bytes:
    """The figure laid out and rendered as PNG bytes (the caller still closes it)."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def scatter_png(
    rows: list[dict[str, Any]],
    x_key: str,
    x_label: str,
    title: str,
    x_scale: float = 1.0,
) -> bytes | None:
    """PNG bytes of p50 latency against `x_key`, a series per (device, threads); None if no points.

    Each p50 carries its 95 % interval as an error bar, where the row has one.
    """
    points: dict[str, list[tuple[float, float, str, float, float]]] = {}
    for row in rows:
        x, y = row.get(x_key), row.get("p50_ms")
        if row.get("status") != "ok" or x is None or y is None:
            continue
        label = f"{row['device']} · {row['threads']} thr" + (
            "" if row.get("xnnpack", True) else " · no xnnpack"
        )
        interval = row.get("p50_ci_ms") or (y, y)
        points.setdefault(label, []).append(
            (
                float(x) * x_scale,
                float(y),
                str(row["model"]),
                max(float(y) - float(interval[0]), 0.0),
                max(float(interval[1]) - float(y), 0.0),
            )
        )
    if not points:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    try:
        for label, series in sorted(points.items()):
            series.sort()
            xs = [p[0] for p in series]
            ys = [p[1] for p in series]
            bars = [[p[3] for p in series], [p[4] for p in series]]
            ax.errorbar(xs, ys, yerr=bars, marker="o", linestyle="-", capsize=3, label=label)
            for x, y, model, _, _ in series:
                ax.annotate(model, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xlabel(x_label)
        ax.set_ylabel("p50 latency (ms), 95 % interval")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
        return figure_png(fig)
    finally:
        plt.close(fig)


def report_plots(rows: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
    """(title, png) pairs: latency vs size, latency vs accuracy (when any accuracy is known)."""
    plots = []
    size = scatter_png(rows, "size_bytes", "model size (MB)", "Latency against model size", 1e-6)
    if size:
        plots.append(("Latency against model size", size))
    accuracy = scatter_png(
        rows, "accuracy", "top-1 accuracy (%)", "Latency against accuracy", x_scale=100.0
    )
    if accuracy:
        plots.append(("Latency against accuracy", accuracy))
    return plots
