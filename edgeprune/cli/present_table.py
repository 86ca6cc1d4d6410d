"""Tables that fit the terminal (80 columns in CI logs and pipes): names are never broken.

Every CLI table is built with `compact_table` and printed with `print_table`:
- a name cell (`Name`: a file, layer, device or variant) is shortened in the middle with "…"
  when its column cannot be as wide as the name, and never wraps;
- other text wraps at its spaces, never inside a word; a column that has sentences keeps
  `TEXT_MIN` characters until names have been shortened (to `NAME_MIN`);
- when even the narrowest columns do not fit, each row is printed as its first cell on a
  line, then "header value" pairs, as many to a line as fit (a vertical layout).
Sentences that belong to a row (a device's problems, an error) go under the table instead.
"""

from __future__ import annotations

from rich import box
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Column, Table
from rich.text import Text

from edgeprune.cli.common import console as stdout_console
from edgeprune.text import shorten_middle

NAME_MIN = 12  # a name is shortened to no fewer characters than this before rows go vertical
INDENT, SEPARATOR = "  ", "  "  # the vertical layout: pairs under a row's first cell
TEXT_MIN = 20  # a text column keeps this much (when it has as much) before names are shortened


class Name:
    """A cell holding a name: as wide as it is, else shortened in the middle to the width given."""

    def __init__(self, text: object, style: str = "", min_width: int = NAME_MIN) -> None:
        self.text = str(text)
        self.style = style
        self.min_width = min_width

    def __str__(self) -> str:
        return self.text

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(min(len(self.text), self.min_width), len(self.text))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text(shorten_middle(self.text, options.max_width), style=self.style, no_wrap=True)


def compact_table(title: str | None = None, **options: object) -> Table:
    """A table that fits 80 columns: a rule under the header, no edge, two spaces between
    columns."""
    settings: dict = {
        "box": box.SIMPLE_HEAD,
        "show_edge": False,
        "pad_edge": False,
        "padding": (0, 1, 0, 0),
    }
    return Table(title=title, **(settings | options))


def print_table(table: Table, console: Console | None = None) -> None:
    """Print `table` within the console's width: columns sized so no word or name breaks, or,
    when even their narrowest does not fit, one block per row (`print_vertical`). The title
    goes on its own line. Print a table once: its title and column widths are set here."""
    out = console or stdout_console
    widths = fitted_widths(table, out)
    if table.title:  # on its own line: wrapped at the console's width, not the table's
        out.print(table.title, style="table.title")
        table.title = None
    if widths is None:
        print_vertical(table, out)
        return
    for column, width in zip(table.columns, widths, strict=True):
        column.width = width
    out.print(table)


def fitted_widths(table: Table, console: Console) -> list[int] | None:
    """Content width of each column so the table fits `console.width`; None if it cannot.

    Room is given up in this order, nothing being lost until the last steps: short text wraps
    at its spaces (a sentence keeps `TEXT_MIN` columns); names are shortened in the middle,
    down to `NAME_MIN`; sentences go down to their longest word.
    """
    options = console.options.update_width(10_000)
    ranges = [_column_range(console, options, column) for column in table.columns]
    overhead = Measurement.get(console, options, table).maximum - sum(high for _, high in ranges)
    room = console.width - overhead
    highs = [high for _, high in ranges]
    names = [_holds_names(column) for column in table.columns]
    words = [low for low, _ in ranges]
    sentences = [max(low, TEXT_MIN) if high > TEXT_MIN else low for low, high in ranges]
    names_whole = [h if n else t for h, t, n in zip(highs, sentences, names, strict=True)]
    names_short = [w if n else t for w, t, n in zip(words, sentences, names, strict=True)]
    for lows in (names_whole, names_short, words):
        if sum(lows) <= room:
            return _share(lows, highs, room, names)
    return None


def _share(lows: list[int], highs: list[int], room: int, names: list[bool]) -> list[int]:
    """Widths from `lows` up to `highs`: the spare room goes to names first, then to the other
    columns, each time in proportion to what each still wants."""
    widths = list(lows)
    for chosen in (names, [not name for name in names]):
        spare = room - sum(widths)
        wanted = [h - w if c else 0 for w, h, c in zip(widths, highs, chosen, strict=True)]
        total = sum(wanted)
        if spare <= 0 or not total:
            continue
        if total <= spare:
            widths = [w + want for w, want in zip(widths, wanted, strict=True)]
            continue
        widths = [w + spare * want // total for w, want in zip(widths, wanted, strict=True)]
        for index in sorted(range(len(widths)), key=lambda i: wanted[i], reverse=True):
            if sum(widths) >= room:
                break
            if wanted[index] and widths[index] < highs[index]:
                widths[index] += 1
    return widths


def _holds_names(column: Column) -> bool:
    return any(isinstance(cell, Name) for cell in column.cells)


def _column_range(console: Console, options: ConsoleOptions, column: Column) -> tuple[int, int]:
    """(narrowest, widest) content of a column: header and cells, without padding."""
    cells: list[RenderableType] = [column.header, *column.cells]
    measured = [Measurement.get(console, options, c) for c in cells]
    high = max((m.maximum for m in measured), default=1)
    low = high if column.no_wrap else max((m.minimum for m in measured), default=1)
    return low, high


def print_vertical(table: Table, console: Console) -> None:
    """Each row as a block: its first cell as a heading, then its other cells as indented
    "header value" pairs, as many to a line as fit (a pair is never split)."""
    columns = list(table.columns)
    cells = [list(column.cells) for column in columns]
    headers = [_plain(column.header) if table.show_header else "" for column in columns]
    room = max(console.width - len(INDENT), 1)
    for index, row in enumerate(table.rows):
        style = row.style or ""
        first = cells[0][index]
        console.print(_as_text(first, console.width), style=style, no_wrap=isinstance(first, Name))
        line = Text()
        for header, column_cells in zip(headers[1:], cells[1:], strict=True):
            value = _as_text(column_cells[index], room)
            pair = Text(header, style="dim") + " " + value if header else value
            if line and len(line) + len(SEPARATOR) + len(pair) > room:
                console.print(Padding.indent(line, len(INDENT)), style=style)
                line = Text()
            line += Text(SEPARATOR) + pair if line else pair
        console.print(Padding.indent(line, len(INDENT)), style=style)


def _as_text(cell: RenderableType, width: int) -> Text:
    """A cell as one Text: a name shortened to `width`, markup read, other renderables as text."""
    if isinstance(cell, Name):
        return Text(shorten_middle(cell.text, width), style=cell.style)
    if isinstance(cell, Text):
        return cell
    if isinstance(cell, str):
        return Text.from_markup(cell)
    return Text(str(cell))


def _plain(header: RenderableType) -> str:
    return header.plain if isinstance(header, Text) else str(header)
