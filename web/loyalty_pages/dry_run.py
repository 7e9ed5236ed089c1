""" "Test this rule on a profile": finding the profile, and reading the event the marketer writes."""

from __future__ import annotations

import json
from typing import Any

SEARCH_LIMIT = 10
EXAMPLE = '{"revenue": 42.5, "currency": "EUR"}'


class PropertiesInvalid(ValueError):
    """The event properties typed are not a JSON object; the message says how to fix them."""


def parse_properties(text: str) -> dict[str, Any] | None:
    """The event's properties (None when left blank: the profile's latest such event is used)."""
    if not text.strip():
        return None
    try:
        found = json.loads(text)
    except ValueError as exc:
        raise PropertiesInvalid(
            f"The event properties are not valid JSON ({exc}). Write an object such as {EXAMPLE}."
        ) from exc
    if not isinstance(found, dict):
        raise PropertiesInvalid(f"Write the event properties as a JSON object, such as {EXAMPLE}.")
    return found
