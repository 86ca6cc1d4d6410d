"""The trajectory as a picture: predicted and measured latency, and accuracy, per iteration."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_trajectory_svg(path: Path, state: dict[str, Any], target_ms: float) -> Path:
    """`trajectory.svg` (or .png, by the suffix): latency (predicted, measured with its interval) and top-1 per iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    baseline = state.get("baseline") or {}
    iterations = state.get("iterations") or []
    steps = [0] + [i["iteration"] for i in iterations]
    measured0 = float((baseline.get("measured") or {}).get("median_ms") or 0.0)
    predicted = [float(baseline.get("predicted_ms") or measured0)] + [
        i["predicted_ms"] for i in iterations
    ]
    measured = [measured0] + [float(i["measured"]["median_ms"]) for i in iterations]
    bounds = [
        i["measured"]["ci_ms"] or [m, m] for m, i in zip(measured[1:], iterations, strict=True)
    ]
    lows = [m - b[0] for m, b in zip(measured[1:], bounds, strict=True)]
    highs = [b[1] - m for m, b in zip(measured[1:], bounds, strict=True)]
    figure, latency_axis = plt.subplots(figsize=(6.4, 3.6))
    latency_axis.plot(steps, predicted, "o--", label="predicted (table)")
    latency_axis.errorbar(
        steps, measured, yerr=[[0.0, *lows], [0.0, *highs]], fmt="s-", label="measured (95 % CI)"
    )
    latency_axis.axhline(target_ms, color="grey", linestyle=":", label="target")
    latency_axis.set_xlabel("iteration")
    latency_axis.set_ylabel("latency (ms)")
    if iterations:
        accuracy_axis = latency_axis.twinx()
        accuracy_axis.plot(
            [i["iteration"] for i in iterations],
            [i["top1"] for i in iterations],
            "^-",
            color="tab:green",
            label="top-1 (short fine-tune)",
        )
        accuracy_axis.set_ylabel("top-1")
    handles = [h for axis in figure.axes for h in axis.get_legend_handles_labels()[0]]
    latency_axis.legend(handles=handles, loc="lower left", fontsize="small")
    figure.tight_layout()
    partial = path.with_name(f".{path.name}.part{path.suffix}")
    figure.savefig(partial, format=path.suffix.lstrip(".") or "svg")
    plt.close(figure)
    partial.replace(path)
    return path
