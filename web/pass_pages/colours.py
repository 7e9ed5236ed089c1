"""Colours as a colour input gives them (``#1a2b3c``) and as a pass stores them (``rgb(26, 43, 60)``)."""

from __future__ import annotations

import re

from core.passes.design import RGB

HEX = re.compile(r"^#([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")
BLACK = "#000000"


class NotAColour(ValueError):
    """What was typed is not a colour."""


def to_rgb(typed: str) -> str | None:
    """``#rrggbb`` (or ``#rgb``, or ``rgb(r, g, b)`` typed by hand) as ``rgb(r, g, b)``; None when blank."""
    text = typed.strip()
    if not text:
        return None
    found = HEX.match(text)
    if found:
        digits = found.group(1)
        if len(digits) == 3:
            digits = "".join(d * 2 for d in digits)
        red, green, blue = (int(digits[i : i + 2], 16) for i in (0, 2, 4))
        return f"rgb({red}, {green}, {blue})"
    matched = RGB.match(text)
    if matched and all(int(part) <= 255 for part in matched.groups()):
        return "rgb({}, {}, {})".format(*(int(part) for part in matched.groups()))
    raise NotAColour(f"“{text}” is not a colour: pick one, or type it like #1a2b3c.")


def to_hex(stored: str | None) -> str:
    """A stored ``rgb(r, g, b)`` as ``#rrggbb`` for a colour input; blank for none (or one it cannot read)."""
    if not stored:
        return ""
    matched = RGB.match(stored)
    if matched is None or any(int(part) > 255 for part in matched.groups()):
        return ""
    return "#" + "".join(f"{int(part):02x}" for part in matched.groups())


def shown(typed: str) -> str:
    """What a colour input can show for a typed value (black for blank or unreadable)."""
    return typed.lower() if HEX.match(typed) and len(typed) == 7 else BLACK
