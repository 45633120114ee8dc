"""Rich output shared by the commands: tables that a pipe or a file never gets with an
address cut in two, and check levels in colour."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from halb.level import Level

_LEVEL_STYLE = {
    Level.OK: "green",
    Level.WARN: "yellow",
    Level.PENDING: "yellow",
    Level.FAIL: "bold red",
}


def level_text(level: Level) -> Text:
    return Text(str(level), style=_LEVEL_STYLE[level])


def print_table(console: Console, table: Table) -> None:
    """On a terminal, fit the screen; elsewhere (pipe, file) print at the table's full width.

    rich assumes 80 columns when stdout is not a terminal and would fold long cells,
    addresses included, in the middle.
    """
    if console.is_terminal:
        console.print(table)
        return
    unbounded = console.options.update(max_width=10_000)
    wanted = console.measure(table, options=unbounded).maximum
    # print(width=) is capped at console.width, so widen the console for this table only
    saved = console.width
    console.width = max(saved, wanted)
    try:
        console.print(table)
    finally:
        console.width = saved
