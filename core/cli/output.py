"""Printing for the CLI: rich tables and panels for people, JSON for scripts, one-line errors."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from core.tenancy.errors import TenancyError

F = TypeVar("F", bound=Callable[..., Any])
ERROR_EXIT_CODE = 2


def console(stderr: bool = False) -> Console:
    """A rich console on the current stdout (or stderr); made per call so test runners can swap them."""
    return Console(stderr=stderr)


def iso(value: datetime | None) -> str | None:
    """A timestamp in ISO 8601, or None."""
    return value.isoformat() if value is not None else None


def print_json(data: Any) -> None:
    """Write ``data`` as one line of JSON on stdout and flush (a script may be reading a pipe)."""
    sys.stdout.write(json.dumps(data, default=str) + "\n")
    sys.stdout.flush()


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
    """A rich table; cells are shown verbatim (no markup) unless they are rich ``Text``; None is blank."""
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(cell) for cell in row))
    console().print(table)


def print_panel(fields: Sequence[tuple[str, Any]], title: str, note: str | None = None) -> None:
    """A rich panel of ``label: value`` lines (values printed verbatim, never re-wrapped)."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for label, value in fields:
        grid.add_row(label, _cell(value))
    body: Any = grid
    if note:
        body = Group(grid, Text(""), Text(note, style="dim"))
    console().print(Panel(body, title=title, expand=False))


def say(message: str, *values: Any) -> None:
    """A line for people on stdout; ``message`` may use rich markup, ``values`` fill its ``{}`` verbatim."""
    console().print(message.format(*(escape(str(v)) for v in values)))


def warn(message: str) -> None:
    """A one-line warning on stderr."""
    typer.echo(typer.style("Warning:", fg="yellow", bold=True) + " " + _one_line(message), err=True)


def fail(message: str, code: int = ERROR_EXIT_CODE) -> NoReturn:
    """Print ``Error: message`` on one line of stderr and exit with ``code``."""
    typer.echo(typer.style("Error:", fg="red", bold=True) + " " + _one_line(message), err=True)
    raise typer.Exit(code)


def handle_errors(function: F) -> F:
    """Turn a service's :class:`TenancyError` into ``Error: ...`` on stderr and exit code 2."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except TenancyError as exc:
            fail(str(exc))

    return wrapper  # type: ignore[return-value]


def _cell(value: Any) -> Text:
    if isinstance(value, Text):
        return value
    return Text("" if value is None else str(value))


def _one_line(message: str) -> str:
    return " ".join(message.split())
