"""Values typed into the builder's inputs: reading them back as JSON, and showing JSON in them.

A trait or property value is typed as text (:func:`typed` reads it, :func:`shown` writes it back);
numbers, dates and choices have typed inputs (:func:`as_number`, :func:`plain`). Which inputs a test
shows depends on its operator (:func:`shape`); when the operator changes, :func:`fit_value` keeps
what can be kept of the value.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from starlette.datastructures import FormData

from core.segments.rules import RELATIVE, Kind, Op

NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
MISSING = object()  # what an operator that takes no value reads


def typed(text: str) -> Any:
    """The JSON value of what was typed in a trait or property value.

    ``42`` and ``9.99`` are numbers, ``true``/``false`` yes/no values, text in double quotes
    (``"42"``) stays text, anything else (``FR``, ``2025-01-31``) is text.
    """
    stripped = text.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] == '"':
        return stripped[1:-1]
    if stripped in ("true", "false"):
        return stripped == "true"
    if NUMBER.fullmatch(stripped):
        return float(stripped) if "." in stripped else int(stripped)
    return stripped


def shown(value: Any) -> str:
    """What a text input shows for a JSON value, so that :func:`typed` reads the same value back."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number_text(value)
    if isinstance(value, str):
        return value if typed(value) == value and not isinstance(typed(value), bool) else f'"{value}"'
    return json.dumps(value)


def as_number(text: str) -> Any:
    """A number from a number input; what is not a number stays text (and the rule says so)."""
    stripped = text.strip()
    try:
        return int(stripped)
    except ValueError:
        pass
    try:
        number = float(stripped)
    except ValueError:
        return stripped
    return number if math.isfinite(number) else stripped


def _number_text(value: Any) -> str:
    """A number written out in full (2.0 as 2, 1e-07 as 0.0000001), as people type them."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return format(Decimal(repr(value)), "f") if isinstance(value, float) else str(value)


def plain(value: Any) -> str:
    """A value as shown in a typed input (number, date, choice)."""
    if value is None:
        return ""
    return (
        _number_text(value) if isinstance(value, int | float) and not isinstance(value, bool) else str(value)
    )


def shape(op: str) -> str:
    """Which inputs an operator takes: none, pair, list, days, text or single."""
    if op in (Op.is_set, Op.is_not_set):
        return "none"
    if op == Op.between:
        return "pair"
    if op in (Op.in_, Op.not_in):
        return "list"
    if op in {o.value for o in RELATIVE}:
        return "days"
    return "text" if op == Op.contains else "single"


def window_kind(window: Any) -> str:
    """Which window an event condition has: ``last`` days, between ``dates``, or ``all`` time (none)."""
    if window is None:
        return "all"
    return "last" if isinstance(window, dict) and "last_days" in window else "dates"


class Fields:
    """The submitted form, read as text."""

    def __init__(self, form: FormData | Mapping[str, Any]) -> None:
        self.form = form

    def has(self, name: str) -> bool:
        """Whether the input was submitted."""
        return name in self.form

    def text(self, name: str, default: str = "") -> str:
        """One input's text (``default`` when it was not submitted)."""
        value = self.form.get(name)
        return value if isinstance(value, str) else default

    def many(self, name: str) -> list[str]:
        """Every value of a multiple select."""
        if isinstance(self.form, FormData):
            return [v for v in self.form.getlist(name) if isinstance(v, str)]
        value = self.form.get(name)
        return [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)]


def _convert(kind: Kind) -> Any:
    if kind == Kind.json:
        return typed
    if kind == Kind.number:
        return as_number
    return lambda text: text.strip()


def read_value(
    f: Fields, prefix: str, before: str, op: str, kind: Kind, choices: Sequence[str], current: Any
) -> Any:
    """The value of a test from its inputs (rendered for operator ``before``), fitted to ``op``.

    :data:`MISSING` when ``op`` takes no value.
    """
    convert = _convert(kind)
    had = shape(before)
    name = prefix + "value"
    value: Any = current
    if had == "pair" and f.has(name + ".0"):
        value = [convert(f.text(name + ".0")), convert(f.text(name + ".1"))]
    elif had == "list" and choices and f.has(prefix + "op"):
        value = f.many(name)
    elif had == "list" and f.has(name):
        value = [convert(item) for item in f.text(name).split(",") if item.strip()]
    elif had == "days" and f.has(name):
        value = as_number(f.text(name))
    elif had == "text" and f.has(name):
        value = f.text(name).strip()
    elif had == "single" and f.has(name):
        value = convert(f.text(name))
    return fit_value(value, had, shape(op), choices)


def fit_value(value: Any, had: str, wants: str, choices: Sequence[str] = ()) -> Any:
    """``value`` (read for shape ``had``) in the shape an operator ``wants``."""
    if wants == "none":
        return MISSING
    if wants == had and value is not None:
        return value
    items = value if isinstance(value, list) else ([] if value in (None, "") else [value])
    if wants == "pair":
        return (items + ["", ""])[:2]
    if wants == "list":
        return items
    first = items[0] if items else None
    if wants == "days":
        return first if isinstance(first, int) and not isinstance(first, bool) else 30
    if wants == "text":
        return first if isinstance(first, str) else shown(first)
    if choices and first not in choices:
        return choices[0]
    return "" if first is None else first
