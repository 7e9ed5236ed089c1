"""Reading a CSV file record by record, with the line each record starts on and what is wrong with it.

- The file is decoded as UTF-8 (a byte-order mark is skipped). Bytes that are not UTF-8 do not stop
  the import: the record that holds them is reported ("non-UTF-8 bytes") and the others are read.
- The delimiter (``,`` ``;`` or tab) is sniffed from the start of the file; quoting is the
  standard ``"`` with ``""`` inside a quoted value; line breaks inside quoted values are kept.
- Line numbers are physical lines, the header being line 1; a record spanning several lines is
  reported at its first line.
- A record whose quoting is broken is reported and reading resumes on the line after the one it
  started on, so one unbalanced quote costs one row, not the rest of the file.
- Blank lines and rows whose cells are all empty are skipped (spreadsheets add them).
"""

from __future__ import annotations

import csv
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

DELIMITERS = ",;\t"
SNIFF_LINES = 50
_UNDECODABLE = re.compile("[\udc80-\udcff]")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}


class ImportProblem(ValueError):
    """The file (or its mapping) cannot be imported at all; the message says how to fix it."""


@dataclass(frozen=True)
class Record:
    """One data record: its first line, its cells, or why it cannot be read."""

    line: int
    fields: list[str]
    problem: str | None = None


class _Lines:
    """The file's physical lines, numbered, with lines given back after a broken record."""

    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle
        self.pending: deque[tuple[int, str]] = deque()
        self.read = 0
        self.taken: list[tuple[int, str]] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.pending:
            numbered = self.pending.popleft()
        else:
            text = next(self.handle)  # StopIteration ends the file
            self.read += 1
            numbered = (self.read, text)
        self.taken.append(numbered)
        return numbered[1]

    def give_back(self, lines: list[tuple[int, str]]) -> None:
        self.pending.extendleft(reversed(lines))


def _friendly(error: csv.Error) -> str:
    message = str(error)
    if "expected after" in message:
        return (
            "broken quoting: a closing quote must be followed by the delimiter "
            '(write a quote inside a quoted value as "")'
        )
    if "unexpected end of data" in message:
        return "broken quoting: a quote opened here is never closed"
    if "field larger than field limit" in message:
        return "broken quoting: a value runs on for more than 128 KB (a quote is probably never closed)"
    return f"broken quoting: {message}"


def _open(path: Path) -> IO[str]:
    try:
        return open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")
    except IsADirectoryError:
        raise ImportProblem(f"{path} is a folder, not a file.") from None
    except FileNotFoundError:
        raise ImportProblem(f"No file {path}.") from None
    except OSError as exc:
        raise ImportProblem(f"Cannot read {path}: {exc.strerror or exc}.") from None


def _sniff(sample_lines: list[str]) -> str:
    """The delimiter: the sniffer's guess among , ; tab, else the one the header holds most of."""
    header = sample_lines[0] if sample_lines else ""
    counts = {d: header.count(d) for d in DELIMITERS}
    by_header = max(DELIMITERS, key=lambda d: (counts[d], -DELIMITERS.index(d)))
    try:
        guessed = csv.Sniffer().sniff("".join(sample_lines), delimiters=DELIMITERS).delimiter
    except csv.Error:
        return by_header if counts[by_header] else ","
    return guessed if counts.get(guessed, 0) >= counts[by_header] else by_header


def _problem_of(fields: list[str]) -> str | None:
    if any(_UNDECODABLE.search(value) for value in fields):
        return "non-UTF-8 bytes: save the file as UTF-8 (the row holds bytes that are not UTF-8)"
    if any("\x00" in value for value in fields):
        return "the row holds a NUL character"
    return None


class CsvSource:
    """A CSV file: its header (read on open) and its data records (read again on each call)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with _open(path) as handle:
            try:
                sample = [line for _, line in zip(range(SNIFF_LINES), handle, strict=False)]
            except OSError as exc:
                raise ImportProblem(f"Cannot read {path}: {exc.strerror or exc}.") from None
        if not any(line.strip() for line in sample):
            raise ImportProblem("The file is empty: the first line must name the columns.")
        self.delimiter = _sniff(sample)
        self.headers = self._read_headers()

    def _reader(self, lines: _Lines) -> Iterator[list[str]]:
        return csv.reader(lines, delimiter=self.delimiter, quotechar='"', doublequote=True, strict=True)

    def _read_headers(self) -> list[str]:
        with _open(self.path) as handle:
            lines = _Lines(handle)
            try:
                raw = next(self._reader(lines))
            except (csv.Error, StopIteration) as exc:
                reason = _friendly(exc) if isinstance(exc, csv.Error) else "it is empty"
                raise ImportProblem(f"The header (line 1) cannot be read: {reason}.") from None
        if _problem_of(raw):
            raise ImportProblem(f"The header (line 1) cannot be read: {_problem_of(raw)}.")
        headers = [value.strip() or f"column_{i + 1}" for i, value in enumerate(raw)]
        seen: dict[str, int] = {}
        for index, header in enumerate(headers):
            key = header.casefold()
            if key in seen:
                raise ImportProblem(
                    f"The column {header!r} appears twice in the header (columns {seen[key] + 1} and "
                    f"{index + 1}): rename one of them."
                )
            seen[key] = index
        return headers

    def records(self) -> Iterator[Record]:
        """Every data record after the header, in file order."""
        width = len(self.headers)
        with _open(self.path) as handle:
            lines = _Lines(handle)
            reader = self._reader(lines)
            header_seen = False
            while True:
                lines.taken = []
                try:
                    fields = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    taken = lines.taken
                    if not header_seen:  # already refused when the source was opened
                        raise ImportProblem(
                            f"The header (line 1) cannot be read: {_friendly(exc)}."
                        ) from None
                    # Read the lines this record swallowed again, as records of their own.
                    lines.give_back(taken[1:])
                    yield Record(taken[0][0] if taken else lines.read, [], _friendly(exc))
                    continue
                if not header_seen:
                    header_seen = True
                    continue
                if not any(value.strip() for value in fields):
                    continue
                line = lines.taken[0][0] if lines.taken else lines.read
                problem = _problem_of(fields)
                if problem is None and len(fields) != width:
                    problem = f"wrong column count: expected {width} columns, found {len(fields)}"
                yield Record(line, fields, problem)

    def count(self) -> int:
        """How many data records :meth:`records` yields (a full pass over the file)."""
        return sum(1 for _ in self.records())

    @property
    def delimiter_name(self) -> str:
        """The delimiter, in words."""
        return DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))
