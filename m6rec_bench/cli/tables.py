"""Tables that fit the terminal: one renderer for every ``list`` / ``show`` command.

A command describes its rows once (a dict per row, every column) and its columns with a priority;
this module prints them three ways:

- ``table`` (default): the columns that fit the terminal width, in priority order. A name column
  is never wrapped or cut (a model name split over two lines cannot be copied into ``--models``);
  at most one *flexible* column (a description) takes the width left and is cut with "…" rather
  than wrapped, so a row is one line; columns that still do not fit are dropped, lowest priority
  first, and a last line names them and says ``--wide``.
- ``--wide``: every column, on lines as long as the longest row needs (for a wide terminal or a pager).
- ``--format json`` / ``--format csv``: every column, plain text for machines, no colour or wrapping.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from m6rec_bench.cli.common import console as default_console


class Format(str, Enum):
    """How a list or show command prints: a table for people, json or csv for programs."""

    table = "table"
    json = "json"
    csv = "csv"


FormatOption = Annotated[
    Format, typer.Option("--format", "-f", show_default=False, help="table (default: fits the terminal), or json / csv with every column.")
]
WideOption = Annotated[bool, typer.Option("--wide", "-w", help="Show every column, however wide the lines get.")]

#: A flexible column narrower than this says too little to be worth its place.
FLEX_MIN = 16
#: What the table adds per column (padding 1 + 1, a one-space rule) and at its edges (no padding, no rule).
_PER_COLUMN, _EDGE = 3, -3


@dataclass(frozen=True)
class Col:
    """One column: its key in the row dicts, heading, and how it behaves when space is short.

    ``priority``: 0 is never dropped; higher numbers are dropped first. ``flex``: the one column
    that takes the remaining width and is cut with "…" (descriptions, errors). ``justify``: numbers
    read best right-aligned.
    """

    key: str
    heading: str | None = None
    priority: int = 0
    flex: bool = False
    justify: str = "left"

    @property
    def title(self) -> str:
        return self.heading if self.heading is not None else self.key


def _cell(value: object) -> Text:
    """A cell as rich text: a :class:`Text` keeps its style; anything else is plain text, never markup
    (a row label such as ``M6-Fusion [int8]`` must not be read as a style tag)."""
    if isinstance(value, Text):
        return value
    return Text("" if value is None else str(value))


def _plain(value: object) -> str:
    return _cell(value).plain


def _natural(col: Col, rows: Sequence[dict[str, object]]) -> int:
    """The width a column needs to show every cell (and its heading) on one line."""
    return max([len(col.title), *(_cell(r.get(col.key)).cell_len for r in rows)])


def fit_columns(columns: Sequence[Col], rows: Sequence[dict[str, object]], width: int) -> tuple[list[Col], dict[str, int]]:
    """The columns to show within ``width`` and each one's width; flexible columns get the rest.

    Columns are taken in ``priority`` order (ties: left to right) while they fit, fixed ones at
    their natural width and flexible ones at :data:`FLEX_MIN` (or their natural width, if smaller);
    a column too wide for what is left is skipped, and a narrower one after it may still fit. The
    chosen columns keep their declared order.
    """
    natural = {c.key: _natural(c, rows) for c in columns}

    def need(c: Col) -> int:
        return (min(natural[c.key], FLEX_MIN) if c.flex else natural[c.key]) + _PER_COLUMN

    chosen: set[str] = set()
    used = _EDGE
    for c in sorted(columns, key=lambda c: c.priority):  # stable: ties keep the declared order
        if c.priority == 0 or used + need(c) <= width:
            chosen.add(c.key)
            used += need(c)
    shown = [c for c in columns if c.key in chosen]
    widths = {c.key: natural[c.key] for c in shown}
    flex = [c for c in shown if c.flex]
    spare = width - (sum(widths[c.key] for c in shown if not c.flex) + _PER_COLUMN * len(shown) + _EDGE)
    for i, c in enumerate(flex):
        share = max(spare // (len(flex) - i), min(natural[c.key], FLEX_MIN))
        widths[c.key] = min(natural[c.key], share)
        spare -= widths[c.key]
    return shown, widths


def render(
    columns: Sequence[Col],
    rows: Sequence[dict[str, object]],
    *,
    title: str | None = None,
    fmt: Format = Format.table,
    wide: bool = False,
    console: Console | None = None,
) -> None:
    """Print ``rows`` as a fitted table, every column (``wide``), or as json / csv for machines."""
    out = console or default_console
    if fmt is Format.json:
        data = [{c.key: _plain(r.get(c.key)) for c in columns} for r in rows]
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    if fmt is Format.csv:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([c.key for c in columns])
        writer.writerows([[_plain(r.get(c.key)) for c in columns] for r in rows])
        typer.echo(buf.getvalue(), nl=False)
        return
    if wide:
        shown, widths = list(columns), {c.key: _natural(c, rows) for c in columns}
    else:
        shown, widths = fit_columns(columns, rows, out.width)
    table = Table(title=Text(title) if isinstance(title, str) else title, box=box.SIMPLE_HEAD, title_justify="left", show_edge=False, pad_edge=False)
    for c in shown:
        table.add_column(c.title, justify=c.justify, no_wrap=True, overflow="ellipsis", min_width=widths[c.key],
                         max_width=widths[c.key])
    for r in rows:
        table.add_row(*[_cell(r.get(c.key)) for c in shown])
    if wide:  # a console as wide as the table: rich would otherwise squeeze it into the terminal
        out = Console(width=max(out.width, sum(widths.values()) + _PER_COLUMN * len(shown) + _EDGE),
                      color_system=out.color_system, force_terminal=out.is_terminal, highlight=False)
    out.print(table)
    hidden = [c.title for c in columns if c not in shown]
    if hidden:
        out.print(f"[dim]hidden at this width: {', '.join(hidden)} (--wide shows all)[/dim]", highlight=False)
