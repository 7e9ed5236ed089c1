"""What is wrong with a loyalty form, in words, next to the input it concerns."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from web.campaign_pages.form import Problems


def _bound(value: Any) -> str:
    return f"{value:,g}" if isinstance(value, int | float) else str(value)


def readable(error: Any) -> str:
    """One pydantic error as a person reads it next to the input (``At least 1.``)."""
    kind, context = error.get("type", ""), error.get("ctx") or {}
    words = {
        "missing": "Required.",
        "string_too_short": "Required.",
        "int_parsing": "A whole number.",
        "int_from_float": "A whole number.",
        "float_parsing": "A number.",
        "date_from_datetime_parsing": "A date, YYYY-MM-DD.",
        "date_parsing": "A date, YYYY-MM-DD.",
        "enum": "Choose one of the options.",
    }
    if kind in words:
        return words[kind]
    if kind in ("greater_than_equal", "greater_than"):
        bound = _bound(context.get("ge", context.get("gt")))
        return f"At least {bound}." if kind == "greater_than_equal" else f"More than {bound}."
    if kind in ("less_than_equal", "less_than"):
        return f"At most {_bound(context.get('le', context.get('lt')))}."
    if kind == "string_too_long":
        return f"At most {context.get('max_length')} characters."
    if kind == "too_long":
        return f"At most {context.get('max_length')} items."
    message = str(error.get("msg", "Not valid."))
    message = message.removeprefix("Value error, ")
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def validation_problems(exc: ValidationError, model_wide: str | None = None) -> Problems:
    """The errors of a model's fields by input name; those about the whole model at ``model_wide``."""
    problems = Problems()
    for error in exc.errors():
        location = error.get("loc") or ()
        problems.add(str(location[0]) if location else model_wide, readable(error))
    return problems
