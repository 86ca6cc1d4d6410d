"""The results report's plots, read back from matplotlib's artists before saving: points are
not joined by lines, no two labels overlap, the legend lists the devices."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import pytest

from edgeprune.results.plots import pyplot, scatter_figure
from edgeprune.results.tables import summary_rows

from .store_fill import DEVICES, MODELS, fill

NO_LINE = ("None", "none", "", " ")


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    store = fill(Path(tmp_path_factory.mktemp("plots")) / "r.db")
    return summary_rows(store.measurements(with_json=True))


@pytest.mark.parametrize(
    "x_key, scale", [("size_bytes", 1e-6), ("accuracy", 100.0)], ids=["size", "accuracy"]
)
def test_scatter_has_no_joining_lines_no_overlapping_labels_and_a_legend_by_device(
    rows: list[dict], x_key: str, scale: float
) -> None:
    fig = scatter_figure(rows, x_key, "x", "title", x_scale=scale)
    assert fig is not None
    try:
        ax = fig.axes[0]
        joined = [
            line
            for line in ax.get_lines()
            if len(line.get_xdata()) > 1 and line.get_linestyle() not in NO_LINE
        ]
        assert joined == []  # same-size models used to be joined into zigzags
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        labels = [t for t in ax.texts if t.get_text()]
        assert len(labels) == len(MODELS) * len(DEVICES) * 2  # two runs
        boxes = [t.get_window_extent(renderer) for t in labels]
        overlapping = [
            (labels[i].get_text(), labels[j].get_text())
            for i, j in combinations(range(len(boxes)), 2)
            if boxes[i].overlaps(boxes[j])
        ]
        assert overlapping == []
        legend = ax.get_legend()
        assert [t.get_text() for t in legend.get_texts()] == sorted(DEVICES)
        assert any("…" in t.get_text() for t in labels)  # the long name, shortened in the middle
        assert all("·run " in t.get_text() for t in labels)
        if x_key == "accuracy":  # percent, like every accuracy shown
            assert sorted({round(x, 2) for x, _ in _offsets(ax)}) == [99.5, 99.75]
    finally:
        pyplot().close(fig)


def _offsets(ax) -> list[tuple[float, float]]:
    """Where the scatter's points are (its PathCollections; error bars are LineCollections)."""
    from matplotlib.collections import PathCollection

    return [
        tuple(p) for c in ax.collections if isinstance(c, PathCollection) for p in c.get_offsets()
    ]
