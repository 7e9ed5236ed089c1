"""The rule the builder's form holds, and the rule's problems placed next to the nodes they concern.

The form keeps the rule as JSON in a hidden field and one set of inputs per node, named
``<path>:<field>``; :func:`rule_from_form` applies the inputs to the JSON. :func:`problems_by_node`
turns the paths of the rule's problems (``all[2].value``) into builder paths (``r.2``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from starlette.datastructures import FormData

from core.plugin_api import SegmentConditionType
from core.segments.rules import COMPUTED_FIELDS, LOYALTY_FIELDS, Kind, Problem
from web.forms import form_fields, parse_form
from web.segment_builder.tree import ROOT, computed_default, group_kind, is_not, loyalty_default, normalize
from web.segment_builder.values import MISSING, Fields, as_number, fit_value, read_value, shape, window_kind

STEP = re.compile(r"(?:(all|any)\[(\d+)\]|not(?=$|[.<]))")


# --- the rule from the form ----------------------------------------------------------------------
def rule_from_form(
    form: FormData | Mapping[str, Any], conditions: Mapping[str, SegmentConditionType]
) -> dict:
    """The rule the form holds: its JSON with every rendered node's inputs applied."""
    f = Fields(form)
    try:
        data = json.loads(f.text("rule"))
    except ValueError:
        data = None
    return _read(normalize(data), ROOT, f, conditions)


def _read(node: Any, path: str, f: Fields, conditions: Mapping[str, SegmentConditionType]) -> Any:
    kind = group_kind(node)
    if kind:
        chosen = f.text(f"{path}:kind", kind)
        return {chosen if chosen in ("all", "any") else kind:
                [_read(child, f"{path}.{i}", f, conditions) for i, child in enumerate(node[kind])]}  # fmt: skip
    if is_not(node):
        return {"not": _read(node["not"], f"{path}.n", f, conditions)}
    prefix = f"{path}:"
    if not isinstance(node, dict) or f.text(prefix + "type") != node.get("type"):
        return node  # not rendered as a form (malformed, or added since)
    readers = {"trait": _read_trait, "computed": _read_computed, "event": _read_event,
               "segment": _read_segment, "consent": _read_consent, "loyalty": _read_loyalty}  # fmt: skip
    reader = readers.get(str(node.get("type")))
    if reader is not None:
        return reader(node, prefix, f)
    condition = conditions.get(str(node.get("type")))
    return _read_plugin(node, prefix, f, condition) if condition else node


def _read_test(node: dict, prefix: str, f: Fields, kind: Kind, choices: Sequence[str] = ()) -> dict[str, Any]:
    before = str(node.get("op", "="))
    op = f.text(prefix + "op", before)
    value = read_value(f, prefix, before, op, kind, choices, node.get("value"))
    return {"op": op} if value is MISSING else {"op": op, "value": value}


def _read_trait(node: dict, prefix: str, f: Fields) -> dict[str, Any]:
    key = f.text(prefix + "key", str(node.get("key", ""))).strip()
    return {"type": "trait", "key": key, **_read_test(node, prefix, f, Kind.json)}


def _read_computed(node: dict, prefix: str, f: Fields) -> dict[str, Any]:
    key = f.text(prefix + "key", str(node.get("key", "")))
    found, before = COMPUTED_FIELDS.get(key), COMPUTED_FIELDS.get(str(node.get("key")))
    if found is not None and found is not before:
        if before is None or (before.kind, before.choices) != (found.kind, found.choices):
            return computed_default(key)
    kind, choices = (found.kind, found.choices) if found else (Kind.json, ())
    return {"type": "computed", "key": key, **_read_test(node, prefix, f, kind, choices)}


def _read_event(node: dict, prefix: str, f: Fields) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "event",
        "event": f.text(prefix + "event", str(node.get("event", ""))).strip(),
    }
    where = node.get("where")
    if isinstance(where, list):
        filters = []
        for i, item in enumerate(where):
            spot = f"{prefix}where.{i}."
            if isinstance(item, dict) and f.has(spot + "op"):
                key = f.text(spot + "key", str(item.get("key", ""))).strip()
                filters.append({"key": key, **_read_test(item, spot, f, Kind.json)})
            else:
                filters.append(item)
        out["where"] = filters
    elif where is not None:
        out["where"] = where
    performed = node.get("performed", True) is not False
    if f.text(prefix + "performed", "yes" if performed else "no") == "no":
        out["performed"] = False
    else:
        measure = f.text(prefix + "measure", str(node.get("measure", "count")))
        if measure != "count":
            out["measure"] = measure
            out["property"] = f.text(prefix + "property", str(node.get("property") or "")).strip()
        if performed:
            out.update(_read_test({"op": ">=", **node}, prefix, f, Kind.number))
        else:  # performed again: at least once
            out.update({"op": ">=", "value": 1})
    window = _read_window(node.get("window"), prefix, f)
    if window is not MISSING:
        out["window"] = window
    return out


def _read_window(window: Any, prefix: str, f: Fields) -> Any:
    before = window_kind(window)
    kind = f.text(prefix + "window", before)
    current = window if isinstance(window, dict) else {}
    if kind == "all":
        return MISSING
    if kind == "last":
        if before == "last" and f.has(prefix + "window.last_days"):
            return {"last_days": as_number(f.text(prefix + "window.last_days"))}
        return {"last_days": current.get("last_days", 30) if before == "last" else 30}
    if before != "dates":
        today = date.today()
        return {"since": (today - timedelta(days=30)).isoformat(), "until": today.isoformat()}
    bounds = {}
    for name in ("since", "until"):
        text = f.text(f"{prefix}window.{name}", str(current.get(name) or "")).strip()
        if text:
            bounds[name] = text
    return bounds


def _read_segment(node: dict, prefix: str, f: Fields) -> dict[str, Any]:
    raw = f.text(prefix + "segment", "" if node.get("segment") is None else str(node.get("segment")))
    return {"type": "segment", "segment": int(raw) if raw.isdigit() else (raw or None)}


def _read_consent(node: dict, prefix: str, f: Fields) -> dict[str, Any]:
    return {"type": "consent", "channel": f.text(prefix + "channel", str(node.get("channel", ""))),
            "purpose": f.text(prefix + "purpose", str(node.get("purpose", "marketing"))).strip()}  # fmt: skip


def _read_loyalty(node: dict, prefix: str, f: Fields) -> dict[str, Any]:
    before_program = node.get("program")
    raw = f.text(prefix + "program", "" if before_program is None else str(before_program))
    program = int(raw) if raw.isdigit() else (raw or None)
    key = f.text(prefix + "field", str(node.get("field", "")))
    found, before = LOYALTY_FIELDS.get(key), LOYALTY_FIELDS.get(str(node.get("field")))
    # Another kind of value, or tiers of another program: the test starts again.
    if found is not None and (
        (found is not before and (before is None or before.kind != found.kind))
        or (found.kind == Kind.text and program != before_program)
    ):
        return loyalty_default(program, key)
    out: dict[str, Any] = {"type": "loyalty", "program": program, "field": key}
    op_before = str(node.get("op", ">="))
    op = f.text(prefix + "op", op_before)
    if found is not None and found.kind == Kind.text and shape(op_before) == "list" and f.has(prefix + "op"):
        value = fit_value(f.many(prefix + "value"), "list", shape(op))  # the tiers, a multiple select
    else:
        kind = found.kind if found else Kind.json
        value = read_value(f, prefix, op_before, op, kind, (), node.get("value"))
    return {**out, "op": op} if value is MISSING else {**out, "op": op, "value": value}


def _read_plugin(node: dict, prefix: str, f: Fields, condition: SegmentConditionType) -> dict[str, Any]:
    spot = prefix + "params."
    submitted = {name: f.text(spot + name) for name in condition.Params.model_fields if f.has(spot + name)}
    params = parse_form(condition.Params, submitted)
    for entry in form_fields(condition.Params, {}):
        if entry.kind == "number" and isinstance(params.get(entry.name), str):
            params[entry.name] = as_number(params[entry.name])
    return {"type": node["type"], "params": params}


# --- problems next to the nodes ------------------------------------------------------------------
def locate(path: str) -> tuple[str, str]:
    """(builder path of the node, the rest) for a :class:`Problem` path such as ``all[2].value``."""
    node, rest = ROOT, path
    while match := STEP.match(rest):
        node += "." + (match.group(2) if match.group(1) else "n")
        rest = rest[match.end() :]
        if rest.startswith(".") and STEP.match(rest[1:]):
            rest = rest[1:]
    return node, rest.lstrip(".")


def _field_name(rest: str) -> str:
    if rest.startswith("<segment"):
        return "the rule of " + rest[1 : rest.index(">")] if ">" in rest else rest
    spoken = re.sub(r"where\[(\d+)\]", lambda m: f"filter {int(m.group(1)) + 1}", rest)
    return spoken.replace("params.", "").replace(".", " ").replace("last_days", "days")


def problems_by_node(problems: Sequence[Problem]) -> dict[str, list[str]]:
    """The problems' messages by builder path (a field's name first when it is about one)."""
    found: dict[str, list[str]] = {}
    for problem in problems:
        node, rest = locate(problem.path)
        message = f"{_field_name(rest)}: {problem.message}" if rest else problem.message
        found.setdefault(node, []).append(message)
    return found
