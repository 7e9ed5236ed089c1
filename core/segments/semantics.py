"""What each operator means, on one value held in memory: the reference for the SQL compiler.

JSON values (traits, event properties) are compared by the operand's type:

- ``=``/``!=``/``in``/``not in``: text matches text exactly, a number any JSON number of the same
  value, true/false only a JSON boolean. ``!=`` and ``not in`` are the exact negations (so they
  hold for profiles without the trait).
- ``<``, ``>``, ``<=``, ``>=``, ``between`` (inclusive): with numbers, JSON numbers; with dates
  (``YYYY-MM-DD``), texts that start with a date, compared by that date.
- ``contains``: a text containing the operand, or a list with an element equal to it, ignoring the
  case of the letters A to Z (both databases agree on those; accented letters match exactly).
- ``is set``: present and not null. Relative dates (``within last days`` ...) and birthdays use
  texts that start with a date, against the tenant's calendar (:class:`~core.segments.clock.Clock`).

Typed computed fields (numbers, instants, text) follow the same operators; a missing value
matches only ``is not set``, ``!=`` and ``not in`` (orders and revenue count 0 when missing).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from core.segments.clock import Clock
from core.segments.rules import DATE, ORDERING, Kind, Op, Test

LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# Relative-date windows of a year or more hold for every birthday.
WHOLE_YEAR = 365


def ascii_lower(text: str) -> str:
    """``text`` with only A-Z lowered, as SQLite's ``lower`` does."""
    return text.translate(LOWER)


def is_number(value: Any) -> bool:
    """A JSON number (booleans are not numbers)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def date_prefix(value: Any) -> str | None:
    """The ``YYYY-MM-DD`` a text starts with, or None."""
    if isinstance(value, str) and DATE.match(value[:10]):
        return value[:10]
    return None


def ordered(op: Op, left: Any, right: Any) -> bool:
    """``left op right`` for one of <, >, <=, >=."""
    if op == Op.lt:
        return bool(left < right)
    if op == Op.gt:
        return bool(left > right)
    if op == Op.lte:
        return bool(left <= right)
    return bool(left >= right)


def birthday_window(clock: Clock, days: int) -> tuple[str, str] | None:
    """The ``MM-DD`` range from today to ``days`` ahead (None: the whole year)."""
    if days >= WHOLE_YEAR:
        return None
    return clock.today.strftime("%m-%d"), (clock.today + timedelta(days=days)).strftime("%m-%d")


def relative_range(op: Op, days: int, clock: Clock) -> tuple[str | None, str | None]:
    """Inclusive date bounds (``YYYY-MM-DD``, None: open) of a relative-date operator."""
    if op == Op.within_last_days:
        return clock.days_ago(days).isoformat(), clock.today.isoformat()
    if op == Op.more_than_days_ago:
        return None, clock.days_ago(days + 1).isoformat()
    return clock.today.isoformat(), clock.days_ago(-days).isoformat()  # within next days


NEGATED = {Op.ne: Op.eq, Op.not_in: Op.in_}


def _presence_or_negation(test: Test, value: Any, decide: Callable[[Test], bool]) -> bool | None:
    """``is set``, ``is not set``, and ``!=``/``not in`` as the opposite of ``decide`` on ``=``/``in``;
    None for the other operators."""
    if test.op == Op.is_set:
        return value is not None
    if test.op == Op.is_not_set:
        return value is None
    if test.op in NEGATED:
        return not decide(Test(NEGATED[test.op], test.value))
    return None


def json_matches(test: Test, value: Any, clock: Clock) -> bool:
    """Whether a JSON value (None: absent) passes ``test``."""
    decided = _presence_or_negation(test, value, lambda other: json_matches(other, value, clock))
    if decided is not None:
        return decided
    op, operand = test.op, test.value
    if op == Op.eq:
        return _json_equal(value, operand)
    if op == Op.in_:
        return any(_json_equal(value, item) for item in operand)
    if op == Op.contains:
        needle = ascii_lower(operand)
        if isinstance(value, str):
            return needle in ascii_lower(value)
        return isinstance(value, list) and any(isinstance(e, str) and ascii_lower(e) == needle for e in value)
    day = date_prefix(value)
    if op in ORDERING or op == Op.between:
        sample = operand[0] if op == Op.between else operand
        left: Any = float(value) if isinstance(sample, float) and is_number(value) else None
        if isinstance(sample, str):
            left = day
        if left is None:
            return False
        if op == Op.between:
            return bool(operand[0] <= left <= operand[1])
        return ordered(op, left, operand)
    if day is None:
        return False
    if op == Op.birthday_within_days:
        window = birthday_window(clock, operand)
        if window is None:
            return True
        start, end = window
        month_day = day[5:]
        return start <= month_day <= end if start <= end else (month_day >= start or month_day <= end)
    low, high = relative_range(op, operand, clock)
    return (low is None or day >= low) and (high is None or day <= high)


def _json_equal(value: Any, operand: Any) -> bool:
    if isinstance(operand, bool):
        return isinstance(value, bool) and value == operand
    if isinstance(operand, float):
        return is_number(value) and float(value) == operand
    return isinstance(value, str) and value == operand


def instant_bounds(test: Test, clock: Clock) -> tuple[datetime | None, datetime | None]:
    """[from, before) in UTC for a date operator on an instant field (None: open)."""
    op, operand = test.op, test.value

    def start(day: str, plus: int = 0) -> datetime:
        return clock.start_of(datetime.fromisoformat(day).date() + timedelta(days=plus))

    if op == Op.between:
        return start(operand[0]), start(operand[1], 1)
    if op == Op.lt:
        return None, start(operand)
    if op == Op.lte:
        return None, start(operand, 1)
    if op == Op.gt:
        return start(operand, 1), None
    if op == Op.gte:
        return start(operand), None
    low, high = relative_range(op, operand, clock)
    return (start(low) if low else None), (start(high, 1) if high else None)


def typed_matches(test: Test, kind: Kind, value: Any, clock: Clock) -> bool:
    """Whether a typed field's value (None: missing) passes ``test``."""
    decided = _presence_or_negation(test, value, lambda other: typed_matches(other, kind, value, clock))
    if decided is not None:
        return decided
    op, operand = test.op, test.value
    if value is None:
        return False
    if kind == Kind.instant:
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        low, high = instant_bounds(test, clock)
        return (low is None or moment >= low) and (high is None or moment < high)
    if kind == Kind.text:
        if op == Op.contains:
            return ascii_lower(operand) in ascii_lower(value)
        return value == operand if op == Op.eq else value in operand
    number = float(value)
    if op == Op.eq:
        return number == operand
    if op == Op.in_:
        return number in [float(v) for v in operand]
    if op == Op.between:
        return bool(operand[0] <= number <= operand[1])
    return ordered(op, number, operand)


def measure_matches(value: float | None, test: Test) -> bool:
    """Whether a count, sum or average (None: an average of nothing) passes ``test``."""
    if value is None:
        return False
    op, operand = test.op, test.value
    if op == Op.between:
        return bool(operand[0] <= value <= operand[1])
    if op in (Op.eq, Op.ne):
        return (value == operand) == (op == Op.eq)
    return ordered(op, value, operand)
