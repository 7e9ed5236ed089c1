"""Writing results into docs/benchmarks.md: Markdown tables between ``<!-- NAME:begin/end -->`` markers."""

from __future__ import annotations

import platform
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

import psutil

from bench.installation import ROOT

DOC = ROOT / "docs" / "benchmarks.md"


def measured_line(details: str) -> str:
    """``Measured <when> on <machine>; <details>.``: the first line of every section."""
    cores, memory = psutil.cpu_count(), psutil.virtual_memory().total / 2**30
    return (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, {cores} cores, "
        f"{memory:.0f} GiB, Python {platform.python_version()}; {details}."
    )


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> list[str]:
    """A Markdown table; the first ``left`` columns are left-aligned, the others right-aligned."""
    rule = ["---" if i < left else "---:" for i in range(len(headers))]
    return ["| " + " | ".join(cells) + " |" for cells in (headers, rule, *rows)]


def markers(name: str) -> tuple[str, str]:
    """The begin and end markers of a section."""
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def block(name: str, lines: Sequence[str]) -> str:
    """A section's lines wrapped in its markers."""
    begin, end = markers(name)
    return "\n".join([begin, *lines, end])


def write_section(name: str, lines: Sequence[str]) -> None:
    """Replace the section ``name`` of docs/benchmarks.md (its markers must be there already)."""
    begin, end = markers(name)
    text = DOC.read_text()
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), flags=re.DOTALL)
    if not pattern.search(text):
        raise RuntimeError(f"{DOC} has no {begin} ... {end} markers")
    DOC.write_text(pattern.sub(lambda _: block(name, lines), text, count=1))


def number(value: float | None, digits: int = 0) -> str:
    """A figure with thousands separators, or an en dash when there is none."""
    return "–" if value is None else f"{value:,.{digits}f}"


def progress(message: str) -> None:
    """A progress line on stderr (stdout carries the results)."""
    print(message, file=sys.stderr, flush=True)
