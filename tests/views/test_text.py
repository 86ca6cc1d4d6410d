"""The shared wording of names and accuracy (edgeprune.text) and the table fitter's choices."""

from __future__ import annotations

import pytest
from rich.console import Console

from edgeprune.cli.present_table import Name, compact_table, fitted_widths, print_table
from edgeprune.text import percent, points, shorten_middle

NAME = "cnn_gr0.8_fp32.tflite"


@pytest.mark.parametrize("width", range(0, len(NAME) + 3))
def test_a_shortened_name_keeps_its_start_and_end_in_the_width(width: int) -> None:
    short = shorten_middle(NAME, width)
    assert len(short) == min(width, len(NAME))
    if width >= len(NAME):
        assert short == NAME
    elif width > 1:
        start, end = short.split("…")
        assert NAME.startswith(start) and NAME.endswith(end) and len(end) >= len(start)


def test_accuracy_is_percent_with_two_decimals_and_points_never_minus_zero() -> None:
    assert percent(0.9975) == "99.75 %" and percent(0.995, unit=False) == "99.50"
    assert percent(None) == "–"
    assert points(-0.001, signed=True) == "+0.00" and points(0.256) == "0.26"


def render(width: int, rows: list[tuple[str, str]]) -> str:
    out = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    table = compact_table("t")
    table.add_column("model")
    table.add_column("note")
    for name, note in rows:
        table.add_row(Name(name), note)
    print_table(table, out)
    return out.export_text()


def test_text_wraps_before_a_name_is_shortened_and_rows_go_vertical_last() -> None:
    rows = [(NAME, "the runtime is missing: install it with agent install")]
    wide = render(60, rows)
    assert NAME in wide and len(wide.splitlines()) == 5  # sentence wrapped, name whole
    narrow = render(34, rows)
    assert NAME not in narrow and shorten_middle(NAME, 12)[:5] in narrow
    assert max(len(line.rstrip()) for line in narrow.splitlines()) <= 34
    vertical = render(40, [(NAME, "see ~/.local/share/edgeprune/agent-spool/logs")])
    assert vertical.splitlines()[1].rstrip() == NAME  # the name as a heading line, whole
    assert "  note see" in vertical  # header and value, indented under the name


def test_widths_are_none_only_when_even_the_narrowest_does_not_fit() -> None:
    table = compact_table()
    table.add_column("n")
    table.add_row(Name("a" * 40))
    assert fitted_widths(table, Console(width=12)) == [12]
    assert fitted_widths(table, Console(width=11)) is None
