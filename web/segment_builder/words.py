"""The rule in words, for the segment's page: nested sentences such as ``country = FR``."""

from __future__ import annotations

import json
from typing import Any

from core.segments.rules import COMPUTED_FIELDS, LOYALTY_FIELDS, Op
from web.segment_builder.options import Options
from web.segment_builder.tree import as_dict, as_list, group_kind, is_not
from web.segment_builder.values import shown

MEASURE_WORDS = {">=": "at least", "<=": "at most", "=": "exactly", "!=": "not exactly", ">": "more than",
                 "<": "fewer than", "between": "between"}  # fmt: skip
OP_PHRASES = {"within last days": "within the last {} days", "more than days ago": "more than {} days ago",
              "within next days": "within the next {} days", "birthday within days": "anniversary within {} days",
              "in": "is one of {}", "not in": "is none of {}", "contains": "contains {}"}  # fmt: skip


def _words(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_words(v) for v in value)
    return shown(value) if not isinstance(value, str) else value


def test_words(subject: str, op: str, value: Any) -> str:
    """``subject op value`` as a short phrase (``country = FR``, ``age between 18 and 30``)."""
    if op in (Op.is_set, Op.is_not_set):
        return f"{subject} {op}"
    if op == Op.between and isinstance(value, list) and len(value) == 2:
        return f"{subject} between {_words(value[0])} and {_words(value[1])}"
    if op in OP_PHRASES:
        return f"{subject} " + OP_PHRASES[op].format(_words(value))
    return f"{subject} {op} {_words(value)}"


def _times(op: str, value: Any) -> str:
    if op == Op.between and isinstance(value, list) and len(value) == 2:
        return f"between {_words(value[0])} and {_words(value[1])} times"
    return f"{MEASURE_WORDS.get(op, op)} {_words(value)} {'time' if value == 1 else 'times'}"


def window_words(window: Any) -> str:
    """`` in the last 30 days``, `` between 2025-01-01 and 2025-03-31``... ('' for all time)."""
    if not isinstance(window, dict):
        return ""
    if "last_days" in window:
        return f" in the last {_words(window['last_days'])} days"
    since, until = window.get("since"), window.get("until")
    if since and until:
        return f" between {since} and {until}"
    return f" since {since}" if since else (f" until {until}" if until else "")


def condition_words(node: Any, options: Options) -> str:
    """One condition as a short sentence."""
    if not isinstance(node, dict):
        return json.dumps(node)
    kind = node.get("type")
    if kind == "trait":
        return test_words(str(node.get("key")), str(node.get("op")), node.get("value"))
    if kind == "computed":
        found = COMPUTED_FIELDS.get(str(node.get("key")))
        label = found.label if found else str(node.get("key"))
        return test_words(label, str(node.get("op")), node.get("value"))
    if kind == "event":
        event = str(node.get("event"))
        where = as_list(node.get("where"))
        filters = " and ".join(test_words(str(w.get("key")), str(w.get("op")), w.get("value"))
                               for w in where if isinstance(w, dict))  # fmt: skip
        suffix = (f" where {filters}" if filters else "") + window_words(node.get("window"))
        if node.get("performed") is False:
            return f"did not perform {event}{suffix}"
        measure, op, value = node.get("measure", "count"), str(node.get("op", "")), node.get("value")
        if measure == "count":
            counted = f" {_times(op, value)}" if "op" in node else ""
            return f"performed {event}{counted}{suffix}"
        total = "a total" if measure == "sum" else "an average"
        amount = test_words("", op, value).strip()
        return f"performed {event} with {total} {node.get('property')} {amount}{suffix}".replace("  ", " ")
    if kind == "segment":
        segment_id = node.get("segment")
        name = options.names.get(segment_id) if isinstance(segment_id, int) else None
        return f"is in segment “{name}”" if name else f"is in segment {segment_id} (missing)"
    if kind == "consent":
        channel = str(node.get("channel"))
        known = options.scope.channels.get(channel)
        return f"granted {node.get('purpose', 'marketing')} consent for {known.label if known else channel}"
    if kind == "loyalty":
        value = LOYALTY_FIELDS.get(str(node.get("field")))
        program = options.program(node.get("program"))
        subject = value.label if value else str(node.get("field"))
        subject += (
            f" in {program.name}" if program else f" in loyalty program {node.get('program')} (missing)"
        )
        return test_words(subject, str(node.get("op")), node.get("value"))
    condition = options.scope.conditions.get(str(kind))
    settings = ", ".join(f"{k}: {_words(v)}" for k, v in as_dict(node.get("params")).items())
    label = condition.label if condition else str(kind)
    return f"{label} ({settings})" if settings else label


def describe(node: Any, options: Options) -> dict[str, Any]:
    """The rule as nested sentences: ``{"text": ...}`` or ``{"label": ..., "children": [...]}``."""
    kind = group_kind(node)
    if kind:
        label = "All of these hold:" if kind == "all" else "At least one of these holds:"
        if not node[kind]:
            return {"text": "everyone" if kind == "all" else "no one"}
        return {"label": label, "children": [describe(child, options) for child in node[kind]]}
    if is_not(node):
        return {"label": "Not this:", "children": [describe(node["not"], options)]}
    return {"text": condition_words(node, options)}
