"""Plots for the report: latency against size and against accuracy, a colour per device.

matplotlib is imported here only, lazily, with the Agg backend: commands that do not
plot never pay for it, and no display is needed.
"""

from __future__ import annotations

import io
from typing import Any

from edgeprune.text import shorten_middle


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend: no display on a build host or in CI."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig: Any, layout: bool = True) -> bytes:
    """The figure (laid out unless `layout` is False) as PNG bytes; the caller closes it."""
    if layout:
        fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


LABEL_CHARS = 28  # a point's label: the model's name, shortened in the middle beyond this


def place_labels(ax: Any, points: list[tuple[float, float, str]], fontsize: int = 7) -> list[Any]:
    """Write each point's label beside it, moved by adjustText until no two labels (nor a
    label and a point) overlap; a thin line leads back to a point whose label had to move."""
    from adjustText import adjust_text

    texts = [
        ax.text(x, y, shorten_middle(label, LABEL_CHARS), fontsize=fontsize)
        for x, y, label in points
    ]
    if len(texts) > 1:
        adjust_text(
            texts,
            x=[p[0] for p in points],
            y=[p[1] for p in points],
            ax=ax,
            expand=(1.1, 1.3),
            arrowprops={"arrowstyle": "-", "color": "#888888", "lw": 0.5},
        )
    return texts


def scatter_figure(
    rows: list[dict[str, Any]],
    x_key: str,
    x_label: str,
    title: str,
    x_scale: float = 1.0,
) -> Any | None:
    """p50 latency against `x_key`: one point per model × device × threads, never joined by a
    line (the models are not a series), a colour per device, its legend listing the devices.

    Each p50 carries its 95 % interval as an error bar, where the row has one. Points of
    several thread counts on one device are labelled "name ·2t", of several runs "name ·run 3".
    None if no row has both values.
    """
    usable = [
        r
        for r in rows
        if r.get("status") == "ok" and r.get(x_key) is not None and r.get("p50_ms") is not None
    ]
    threads_of: dict[str, set[tuple[int, bool]]] = {}
    for row in usable:
        threads_of.setdefault(row["device"], set()).add(
            (row["threads"], bool(row.get("xnnpack", True)))
        )
    runs = {r.get("run_id") for r in usable}
    points: dict[str, list[tuple[float, float, str, float, float]]] = {}
    for row in usable:
        x, y = row[x_key], row["p50_ms"]
        label = str(row["model"])
        if len(threads_of[row["device"]]) > 1:
            label += f" ·{row['threads']}t" + ("" if row.get("xnnpack", True) else " no-xnn")
        if len(runs) > 1:
            label += f" ·run {row.get('run_id')}"
        interval = row.get("p50_ci_ms") or (y, y)
        points.setdefault(str(row["device"]), []).append(
            (
                float(x) * x_scale,
                float(y),
                label,
                max(float(y) - float(interval[0]), 0.0),
                max(float(interval[1]) - float(y), 0.0),
            )
        )
    if not points:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    labelled: list[tuple[float, float, str]] = []
    for index, (device, series) in enumerate(sorted(points.items())):
        colour = colours[index % len(colours)]
        xs = [p[0] for p in series]
        ys = [p[1] for p in series]
        bars = [[p[3] for p in series], [p[4] for p in series]]
        ax.errorbar(xs, ys, yerr=bars, fmt="none", ecolor=colour, capsize=3, alpha=0.7)
        ax.scatter(xs, ys, color=colour, s=30, zorder=3, label=device)
        labelled += [(p[0], p[1], p[2]) for p in series]
    ax.set_xlabel(x_label)
    ax.set_ylabel("p50 latency (ms), 95 % interval")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, title="device", title_fontsize=8)
    fig.tight_layout()
    place_labels(ax, labelled)
    return fig


def scatter_png(
    rows: list[dict[str, Any]],
    x_key: str,
    x_label: str,
    title: str,
    x_scale: float = 1.0,
) -> bytes | None:
    """PNG bytes of `scatter_figure` (None if no points)."""
    fig = scatter_figure(rows, x_key, x_label, title, x_scale)
    if fig is None:
        return None
    try:
        return figure_png(fig, layout=False)  # laid out before the labels were placed
    finally:
        pyplot().close(fig)


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
