"""Terminal output: tables that line up with Japanese text, progress bars only on a terminal.

On a terminal `rich` measures full-width characters; in a pipe, a log or CI the same rows come
out as tab-separated lines (easy to grep or cut) and progress stays silent.
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import Progress, track
from rich.table import Table

T = TypeVar("T")


def print_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    highlight: Sequence[bool] | None = None,
) -> None:
    """`highlight[i]` marks row i (e.g. overdue) in red on a terminal."""
    rows = [["" if v is None else str(v) for v in row] for row in rows]
    if not sys.stdout.isatty():
        print("\t".join(headers))
        for row in rows:
            print("\t".join(v.replace("\t", " ").replace("\n", " ") for v in row))
        return
    table = Table(title=title, show_lines=False, header_style="bold")
    for header in headers:
        table.add_column(header, overflow="fold")
    for index, row in enumerate(rows):
        style = "red" if highlight and index < len(highlight) and highlight[index] else None
        table.add_row(*row, style=style)
    Console().print(table)


def display_width(text: str) -> int:
    """Columns a text takes on a terminal or in a fixed-width font: full-width (East Asian
    Wide/Fullwidth) characters two, combining marks none, the rest one."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in "WF" else 1
    return width


def aligned_lines(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """The table as lines whose columns line up by display width (Japanese text takes two
    columns a character), two spaces apart; tabs and line breaks in values become spaces."""
    table = [list(headers)] + [
        [("" if v is None else str(v)).replace("\t", " ").replace("\n", " ") for v in row]
        for row in rows
    ]
    widths = [max(display_width(row[i]) for row in table) for i in range(len(headers))]
    lines = []
    for row in table:
        cells = [v + " " * (widths[i] - display_width(v)) for i, v in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return lines


@contextmanager
def counter(total: int, description: str) -> Iterator[Callable[[], None]]:
    """A bar advanced by calling the yielded function, for loops that fetch in pages."""
    if not sys.stderr.isatty() or total <= 0:
        yield lambda: None
        return
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)


def progress(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    if not sys.stderr.isatty():
        yield from items
        return
    yield from track(
        items, description=description, total=total, console=Console(stderr=True), transient=True
    )
