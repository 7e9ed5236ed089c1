"""Segments in the UI: the list, the no-code audience builder with its live preview, the detail page.

The builder is driven by the server. The form keeps the rule tree as JSON in a hidden field and
one set of inputs per node, named ``<path>:<field>``, where the path says where the node is
(``r`` the root group, ``r.0`` its first child, ``r.0.n`` what a *not* negates). Every edit
posts the whole form: the rule is rebuilt from the JSON and the inputs (:func:`rule_from_form`),
the action applied (:func:`apply_action`), and the builder comes back with the live preview
(count, sample, reach per channel) or the problems next to the conditions they concern. Typing
in a text input refreshes only the preview, so the input being typed in is never replaced.

Seeing segments and previewing needs ``read_data``; saving and archiving ``write_marketing``
(recorded in the audit log as ``segment.create``, ``segment.update``, ``segment.archive``; the
CSV export as ``segment.export``).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import logging
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import quote

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from sqlmodel import Session, select
from starlette.datastructures import FormData

from core.audit import service as audit
from core.db.engines import tenant_session
from core.plugin_api import SegmentConditionType
from core.profiles.models import Profile
from core.queue.outbox import add_job
from core.segments import service
from core.segments.jobs import REFRESH_SEGMENTS
from core.segments.models import Segment
from core.segments.rules import COMPUTED_FIELDS, KIND_OPS, MEASURE_OPS, RELATIVE, Kind, Op, Problem, RuleError
from core.segments.service import Reach, SegmentConflict, SegmentNotFound, TenantScope, tenant_scope
from core.tenancy.roles import Permission
from web.auth import ControlDB, Principal, client_info, require
from web.csrf import verify_csrf
from web.forms import form_fields, parse_form
from web.routes.pages import page_context
from web.templating import render

log = logging.getLogger(__name__)
router = APIRouter(prefix="/t/{tenant}/segments", dependencies=[Depends(verify_csrf)])
Reader = Annotated[Principal, Depends(require(Permission.read_data))]
Marketer = Annotated[Principal, Depends(require(Permission.write_marketing))]

ROOT = "r"
MEMBERS_PAGE = 50
SUGGESTIONS = 200
CSV_COLUMNS = ["profile_id", "name", "email", "phone", "entered_at"]
NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
STEP = re.compile(r"(?:(all|any)\[(\d+)\]|not(?=$|[.<]))")
MISSING = object()

CONDITION_TYPES = {"trait": "Trait", "computed": "Computed", "event": "Event", "segment": "Segment",
                   "consent": "Consent"}  # fmt: skip
OP_LABELS = {
    "=": "=", "!=": "≠", "<": "<", ">": ">", "<=": "≤", ">=": "≥", "between": "between",
    "in": "is one of", "not in": "is none of", "contains": "contains", "is set": "is set",
    "is not set": "is not set", "within last days": "within the last … days",
    "more than days ago": "more than … days ago", "within next days": "within the next … days",
    "birthday within days": "anniversary within … days",
}  # fmt: skip
MEASURE_WORDS = {">=": "at least", "<=": "at most", "=": "exactly", "!=": "not exactly", ">": "more than",
                 "<": "fewer than", "between": "between"}  # fmt: skip
MEASURE_ORDER = sorted(MEASURE_OPS, key=[">=", "<=", "=", ">", "<", "!=", "between"].index)
MEASURES = {"count": "number of times", "sum": "total of a property", "avg": "average of a property"}
WINDOWS = {"last": "in the last … days", "dates": "between dates", "all": "at any time"}


# --- values typed into text inputs ---------------------------------------------------------------
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


def _plain(value: Any) -> str:
    """A value as typed in a typed input (number, date, choice)."""
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


# --- the tree: nodes by path ---------------------------------------------------------------------
def as_list(value: Any) -> list[Any]:
    """``value`` if it is a list, else an empty one."""
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is an object, else an empty one."""
    return value if isinstance(value, dict) else {}


def group_kind(node: Any) -> str | None:
    """``all`` or ``any`` for a group node, else None."""
    if isinstance(node, dict) and len(node) == 1:
        kind = next(iter(node))
        if kind in ("all", "any") and isinstance(node[kind], list):
            return str(kind)
    return None


def is_not(node: Any) -> bool:
    """Whether the node is ``{"not": rule}``."""
    return isinstance(node, dict) and len(node) == 1 and "not" in node


def normalize(data: Any) -> dict[str, Any]:
    """The rule with a group (all or any) at its root, as the builder edits it (same meaning)."""
    if group_kind(data):
        return dict(data)
    if data in (None, {}, []):
        return {"all": []}
    return {"all": [data]}


def node_at(rule: Any, path: str) -> Any:
    """The node at ``path`` (None if there is none)."""
    steps = path.split(".")
    if steps[0] != ROOT:
        return None
    node = rule
    for step in steps[1:]:
        kind = group_kind(node)
        if step == "n" and is_not(node):
            node = node["not"]
        elif kind and step.isdigit() and int(step) < len(node[kind]):
            node = node[kind][int(step)]
        else:
            return None
    return node


def _replace(rule: dict[str, Any], path: str, new: Any) -> None:
    parent_path, _, last = path.rpartition(".")
    parent = node_at(rule, parent_path)
    if last == "n":
        parent["not"] = new
    else:
        parent[group_kind(parent)][int(last)] = new  # type: ignore[index]


def _remove(rule: dict[str, Any], path: str) -> None:
    parent_path, _, last = path.rpartition(".")
    parent = node_at(rule, parent_path)
    if is_not(parent):
        if parent_path != ROOT:
            _remove(rule, parent_path)
    elif kind := group_kind(parent):
        del parent[kind][int(last)]


@dataclass
class Options:
    """What a rule of this tenant may refer to, for the builder's selects and new conditions."""

    scope: TenantScope
    segments: list[tuple[int, str]] = field(default_factory=list)  # other active segments
    names: dict[int, str] = field(default_factory=dict)  # every active segment
    trait_keys: list[str] = field(default_factory=list)
    event_names: list[str] = field(default_factory=list)


def new_condition(kind: str, options: Options) -> dict[str, Any] | None:
    """A fresh condition of ``kind`` with sensible defaults (None for an unknown kind)."""
    if kind == "trait":
        return {"type": "trait", "key": "", "op": "=", "value": ""}
    if kind == "computed":
        return {"type": "computed", "key": "orders", "op": ">=", "value": 1}
    if kind == "event":
        return {"type": "event", "event": "", "op": ">=", "value": 1, "window": {"last_days": 30}}
    if kind == "segment":
        return {"type": "segment", "segment": options.segments[0][0] if options.segments else None}
    if kind == "consent":
        channel = next(iter(sorted(options.scope.channels)), "")
        return {"type": "consent", "channel": channel, "purpose": "marketing"}
    if kind in options.scope.conditions:
        return {"type": kind, "params": {}}
    return None


def apply_action(rule: dict[str, Any], action: str, options: Options) -> dict[str, Any]:
    """The rule after one builder action (``verb:path[:argument]``); unknown actions change nothing.

    ``add:<group>:<type>`` adds a condition, ``group:<group>:any|all`` a nested group,
    ``negate:<node>`` wraps a node in *not* (or unwraps it), ``remove:<node>`` removes it,
    ``where-add:<event>`` and ``where-remove:<event>:<i>`` add and remove property filters.
    """
    verb, _, rest = action.partition(":")
    path, _, argument = rest.partition(":")
    rule = copy.deepcopy(rule)
    node = node_at(rule, path)
    if node is None:
        return rule
    kind = group_kind(node)
    if verb == "add" and kind:
        condition = new_condition(argument, options)
        if condition is not None:
            node[kind].append(condition)
    elif verb == "group" and kind and argument in ("all", "any"):
        node[kind].append({argument: []})
    elif verb == "negate" and path != ROOT:
        _replace(rule, path, node["not"] if is_not(node) else {"not": node})
    elif verb == "remove" and path != ROOT:
        _remove(rule, path)
    elif verb == "where-add" and isinstance(node, dict) and node.get("type") == "event":
        node["where"] = [*as_list(node.get("where")), {"key": "", "op": "=", "value": ""}]
    elif verb == "where-remove" and isinstance(node, dict) and isinstance(node.get("where"), list):
        if argument.isdigit() and int(argument) < len(node["where"]):
            del node["where"][int(argument)]
        if not node["where"]:
            del node["where"]
    return rule


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
               "segment": _read_segment, "consent": _read_consent}  # fmt: skip
    reader = readers.get(str(node.get("type")))
    if reader is not None:
        return reader(node, prefix, f)
    condition = conditions.get(str(node.get("type")))
    return _read_plugin(node, prefix, f, condition) if condition else node


def _test(node: dict, prefix: str, f: Fields, kind: Kind, choices: Sequence[str] = ()) -> dict[str, Any]:
    before = str(node.get("op", "="))
    op = f.text(prefix + "op", before)
    value = read_value(f, prefix, before, op, kind, choices, node.get("value"))
    return {"op": op} if value is MISSING else {"op": op, "value": value}


def _read_trait(node: dict, prefix: str, f: Fields) -> dict[str, Any]:
    key = f.text(prefix + "key", str(node.get("key", ""))).strip()
    return {"type": "trait", "key": key, **_test(node, prefix, f, Kind.json)}


def computed_default(key: str) -> dict[str, Any]:
    """The operator and value a computed field starts with when chosen."""
    found = COMPUTED_FIELDS[key]
    if found.choices:
        return {"type": "computed", "key": key, "op": "in", "value": [found.choices[0]]}
    if found.kind == Kind.instant:
        return {"type": "computed", "key": key, "op": Op.within_last_days.value, "value": 30}
    return {"type": "computed", "key": key, "op": ">=", "value": 1}


def _read_computed(node: dict, prefix: str, f: Fields) -> dict[str, Any]:
    key = f.text(prefix + "key", str(node.get("key", "")))
    found, before = COMPUTED_FIELDS.get(key), COMPUTED_FIELDS.get(str(node.get("key")))
    if found is not None and found is not before:
        if before is None or (before.kind, before.choices) != (found.kind, found.choices):
            return computed_default(key)
    kind, choices = (found.kind, found.choices) if found else (Kind.json, ())
    return {"type": "computed", "key": key, **_test(node, prefix, f, kind, choices)}


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
                filters.append({"key": key, **_test(item, spot, f, Kind.json)})
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
            out.update(_test({"op": ">=", **node}, prefix, f, Kind.number))
        else:  # performed again: at least once
            out.update({"op": ">=", "value": 1})
    window = _read_window(node.get("window"), prefix, f)
    if window is not MISSING:
        out["window"] = window
    return out


def window_kind(window: Any) -> str:
    """``last``, ``dates`` or ``all`` (no window)."""
    if window is None:
        return "all"
    return "last" if isinstance(window, dict) and "last_days" in window else "dates"


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


# --- the view of the tree ------------------------------------------------------------------------
def _ops(allowed: Sequence[str], current: str, labels: Mapping[str, str]) -> list[tuple[str, str]]:
    choices = [(str(op), labels.get(str(op), str(op))) for op in allowed]
    if current not in allowed:
        choices.insert(0, (current, f"{current} (unknown)"))
    return choices


def value_view(op: str, value: Any, kind: Kind, choices: Sequence[str] = ()) -> dict[str, Any]:
    """How a test's value is shown: its inputs (by operator) and their contents."""
    text = shown if kind == Kind.json else _plain
    items = value if isinstance(value, list) else [value]
    kinds = {Kind.number: "number", Kind.instant: "date", Kind.json: "text"}
    view = {"shape": shape(op), "input": "select" if choices else kinds.get(kind, "text"),
            "choices": list(choices), "selected": [str(v) for v in items], "text": "", "low": "", "high": ""}  # fmt: skip
    if view["shape"] == "pair":
        view["low"], view["high"] = (text(v) for v in (items + ["", ""])[:2])
    elif view["shape"] == "list":
        view["text"] = ", ".join(text(v) for v in items if v is not None)
    elif view["shape"] == "days":
        view["input"], view["text"] = "number", _plain(value)
    elif view["shape"] == "text":
        view["input"], view["text"] = "text", "" if value is None else str(value)
    else:
        view["text"] = text(value)
    return view


def tree_view(
    node: Any, path: str, problems: Mapping[str, list[str]], options: Options, parent: str = ""
) -> dict[str, Any]:
    """The builder's view of a node and everything under it."""
    view: dict[str, Any] = {"path": path, "id": "n-" + path.replace(".", "-"), "root": path == ROOT,
                            "problems": problems.get(path, []), "in_not": parent == "not"}  # fmt: skip
    kind = group_kind(node)
    if kind:
        children = [tree_view(c, f"{path}.{i}", problems, options, kind) for i, c in enumerate(node[kind])]
        return {**view, "kind": "group", "group": kind, "children": children}
    if is_not(node):
        return {**view, "kind": "not", "child": tree_view(node["not"], f"{path}.n", problems, options, "not")}
    return {**view, "kind": "condition", **condition_view(node, options)}


def condition_view(node: Any, options: Options) -> dict[str, Any]:
    """What one condition's inputs show."""
    if not isinstance(node, dict):
        return {"type": "unknown", "label": "Not a condition", "raw": json.dumps(node)}
    kind = str(node.get("type", ""))
    op = str(node.get("op", ""))
    view: dict[str, Any] = {"type": kind, "label": CONDITION_TYPES.get(kind, kind), "raw": json.dumps(node)}
    if kind == "trait":
        view.update(key=str(node.get("key", "")), op=op, ops=_ops(KIND_OPS[Kind.json], op, OP_LABELS),
                    value=value_view(op, node.get("value"), Kind.json))  # fmt: skip
    elif kind == "computed":
        found = COMPUTED_FIELDS.get(str(node.get("key")))
        value_kind, choices = (found.kind, found.choices) if found else (Kind.json, ())
        view.update(key=str(node.get("key", "")), op=op, ops=_ops(KIND_OPS[value_kind], op, OP_LABELS),
                    fields=[(f.key, f.label) for f in COMPUTED_FIELDS.values()], known=found is not None,
                    value=value_view(op, node.get("value"), value_kind, choices))  # fmt: skip
    elif kind == "event":
        view.update(_event_view(node))
    elif kind == "segment":
        current = node.get("segment")
        view.update(segment=current, options=options.segments,
                    missing=current is not None and current not in {sid for sid, _ in options.segments})  # fmt: skip
    elif kind == "consent":
        channels = [(key, ch.label) for key, ch in sorted(options.scope.channels.items())]
        view.update(channel=str(node.get("channel", "")), purpose=str(node.get("purpose", "marketing")),
                    options=channels, known=node.get("channel") in options.scope.channels)  # fmt: skip
    elif kind in options.scope.conditions:
        condition = options.scope.conditions[kind]
        view.update(label=condition.label, fields=form_fields(condition.Params, as_dict(node.get("params"))))
    else:
        view["type"] = "unknown"
    return view


def _event_view(node: dict) -> dict[str, Any]:
    op = str(node.get("op", ">="))
    window = as_dict(node.get("window"))
    filters = []
    for i, item in enumerate(as_list(node.get("where"))):
        item = item if isinstance(item, dict) else {}
        item_op = str(item.get("op", "="))
        filters.append({"index": i, "key": str(item.get("key", "")), "op": item_op,
                        "ops": _ops(KIND_OPS[Kind.json], item_op, OP_LABELS),
                        "value": value_view(item_op, item.get("value"), Kind.json)})  # fmt: skip
    return {"event": str(node.get("event", "")), "performed": node.get("performed", True) is not False,
            "measure": str(node.get("measure", "count")), "property": str(node.get("property") or ""),
            "op": op, "ops": _ops(MEASURE_ORDER, op, MEASURE_WORDS), "measures": MEASURES,
            "value": value_view(op, node.get("value", 1), Kind.number), "windows": WINDOWS,
            "window": window_kind(node.get("window")), "last_days": _plain(window.get("last_days")),
            "since": str(window.get("since") or ""), "until": str(window.get("until") or ""),
            "where": filters}  # fmt: skip


def flat(view: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of a tree view, depth first."""
    nodes = [view]
    for child in view.get("children", []) + ([view["child"]] if "child" in view else []):
        nodes += flat(child)
    return nodes


# --- the rule in words ---------------------------------------------------------------------------
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
    phrases = {"within last days": "within the last {} days", "more than days ago": "more than {} days ago",
               "within next days": "within the next {} days", "birthday within days": "anniversary within {} days",
               "in": "is one of {}", "not in": "is none of {}", "contains": "contains {}"}  # fmt: skip
    if op in phrases:
        return f"{subject} " + phrases[op].format(_words(value))
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


# --- the preview ---------------------------------------------------------------------------------
@dataclass
class Preview:
    """The live evaluation of a rule, or why there is none."""

    count: int | None = None
    sample: list[Profile] = field(default_factory=list)
    reach: list[Reach] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    error: str | None = None


def evaluate(tenant_db: Session, scope: TenantScope, rule: Any, self_id: int | None) -> Preview:
    """Count, sample and reach of ``rule`` now; its problems when it is not valid."""
    try:
        parsed = service.check_rule(tenant_db, rule, scope.conditions, self_id)
    except RuleError as exc:
        return Preview(problems=exc.problems)
    try:
        return Preview(
            count=service.count(tenant_db, parsed, scope.clock),
            sample=service.sample(tenant_db, parsed, scope.clock),
            reach=service.reach(tenant_db, parsed, scope.clock, scope.channels),
        )
    except Exception as exc:  # noqa: BLE001 - e.g. a plugin condition's SQL: show it, keep the page
        log.exception("segment preview failed")
        tenant_db.rollback()
        return Preview(error=f"The count failed ({type(exc).__name__}).")


def load_options(tenant_db: Session, scope: TenantScope, self_id: int | None) -> Options:
    """The other segments, and trait keys and event names seen, for the builder's suggestions."""
    active = service.active_segments(tenant_db)
    segments = [(s.id, s.name) for s in active if s.id is not None and s.id != self_id]
    keys: set[str] = set()
    for traits in tenant_db.exec(select(Profile.traits).limit(SUGGESTIONS)):
        keys.update(k for k in (traits or {}) if isinstance(k, str))
    return Options(scope, segments, {s.id: s.name for s in active if s.id is not None},
                   sorted(keys)[:SUGGESTIONS], event_names(tenant_db))  # fmt: skip


def event_names(tenant_db: Session, limit: int = SUGGESTIONS) -> list[str]:
    """Distinct event names, read by hopping along the (name, time) index (cheap on both databases)."""
    query = sa.text(
        "WITH RECURSIVE names(name, n) AS ("
        ' SELECT (SELECT MIN(event) FROM "event" WHERE event IS NOT NULL), 1'
        ' UNION ALL SELECT (SELECT MIN(event) FROM "event" WHERE event > names.name), n + 1'
        " FROM names WHERE names.name IS NOT NULL AND n < :limit)"
        " SELECT name FROM names WHERE name IS NOT NULL"
    )
    return [str(name) for (name,) in tenant_db.connection().execute(query, {"limit": limit})]


# --- pages ---------------------------------------------------------------------------------------
def _base(principal: Principal) -> str:
    return f"/t/{principal.tenant.slug}/segments"


def _builder_context(
    request: Request,
    session: Session,
    principal: Principal,
    rule: Any,
    segment: Segment | None,
    *,
    name: str | None = None,
    description: str | None = None,
    save_error: str | None = None,
    extra_problems: Sequence[Problem] = (),
    scope: TenantScope | None = None,
    options: Options | None = None,
) -> dict[str, Any]:
    """What the builder's templates show: the tree with its problems, the preview, the choices."""
    scope = scope or tenant_scope(session, principal.tenant)
    self_id = segment.id if segment else None
    rule = normalize(rule)
    with tenant_session(principal.tenant.database) as tenant_db:
        options = options or load_options(tenant_db, scope, self_id)
        preview = evaluate(tenant_db, scope, rule, self_id)
    problems = problems_by_node([*preview.problems, *extra_problems])
    tree = tree_view(rule, ROOT, problems, options)
    placed = {node["path"] for node in flat(tree)}
    base = _base(principal)
    return page_context(
        request, session, principal, section="segments", segment=segment, rule=rule, tree=tree,
        rule_json=json.dumps(rule), preview=preview, options=options, nodes=flat(tree), base=base,
        unplaced=[m for path, found in problems.items() if path not in placed for m in found],
        save_url=f"{base}/{segment.id}/edit" if segment else f"{base}/new", save_error=save_error,
        name=name if name is not None else (segment.name if segment else ""),
        description=description if description is not None else (segment.description if segment else ""),
        plugin_types=scope.conditions, condition_types=CONDITION_TYPES,
    )  # fmt: skip


@router.get("", include_in_schema=False)
def segments_page(request: Request, session: ControlDB, principal: Reader, archived: str = "") -> Response:
    """Every active segment: its size when last counted, and who changed it when."""
    with tenant_session(principal.tenant.database) as tenant_db:
        segments = service.active_segments(tenant_db)
    context = page_context(request, session, principal, section="segments", segments=segments,
                           archived=archived, base=_base(principal))  # fmt: skip
    return render(request, "segments/list.html", context)


@router.get("/new", include_in_schema=False)
def new_segment_page(request: Request, session: ControlDB, principal: Reader) -> Response:
    """The builder for a new segment (read-only for roles that may not save)."""
    context = _builder_context(request, session, principal, {"all": []}, None)
    return render(request, "segments/builder.html", context)


@router.get("/{segment_id:int}/edit", include_in_schema=False)
def edit_segment_page(request: Request, segment_id: int, session: ControlDB, principal: Reader) -> Response:
    """The builder for an existing segment."""
    segment = _segment_or_404(principal, segment_id)
    context = _builder_context(request, session, principal, segment.rule, segment)
    return render(request, "segments/builder.html", context)


def _segment_id(f: Fields) -> int | None:
    raw = f.text("segment_id")
    return int(raw) if raw.isdigit() else None


def _rebuild(request: Request, session: Session, principal: Principal, form: FormData) -> Response:
    f = Fields(form)
    scope = tenant_scope(session, principal.tenant)
    rule = rule_from_form(form, scope.conditions)
    self_id = _segment_id(f)
    with tenant_session(principal.tenant.database) as tenant_db:
        options = load_options(tenant_db, scope, self_id)
        segment = tenant_db.get(Segment, self_id) if self_id else None
    action = f.text("action")
    if action:
        rule = apply_action(rule, action, options)
    context = _builder_context(request, session, principal, rule, segment, name=f.text("name"),
                               description=f.text("description"), scope=scope, options=options)  # fmt: skip
    return render(request, "segments/_builder_response.html", context)


@router.post("/builder", include_in_schema=False)
async def builder(request: Request, session: ControlDB, principal: Reader) -> Response:
    """Apply one edit (the ``action`` field, or the inputs alone) and re-render the builder and preview."""
    form = await request.form()
    return await run_in_threadpool(_rebuild, request, session, principal, form)


def _preview(request: Request, session: Session, principal: Principal, form: FormData) -> Response:
    scope = tenant_scope(session, principal.tenant)
    rule = rule_from_form(form, scope.conditions)
    self_id = _segment_id(Fields(form))
    with tenant_session(principal.tenant.database) as tenant_db:
        segment = tenant_db.get(Segment, self_id) if self_id else None
    context = _builder_context(request, session, principal, rule, segment, scope=scope)
    return render(request, "segments/_preview_response.html", context)


@router.post("/preview", include_in_schema=False)
async def preview(request: Request, session: ControlDB, principal: Reader) -> Response:
    """The live preview of the rule the form holds, and the problems next to its conditions."""
    form = await request.form()
    return await run_in_threadpool(_preview, request, session, principal, form)


def _save(
    request: Request, session: Session, principal: Principal, form: FormData, segment_id: int | None
) -> Response:
    f = Fields(form)
    scope = tenant_scope(session, principal.tenant)
    rule = rule_from_form(form, scope.conditions)
    name, description = f.text("name"), f.text("description")
    with tenant_session(principal.tenant.database) as tenant_db:
        try:
            if segment_id is None:
                saved = service.create_segment(tenant_db, name, rule, principal.actor, scope.conditions,
                                               description)  # fmt: skip
            else:
                saved = service.update_segment(tenant_db, segment_id, principal.actor, scope.conditions,
                                               name=name, rule=rule, description=description)  # fmt: skip
        except SegmentNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except (RuleError, SegmentConflict) as exc:
            tenant_db.rollback()
            current = tenant_db.get(Segment, segment_id) if segment_id else None
            return _not_saved(request, session, principal, rule, current, name, description, exc)
        add_job(tenant_db, principal.tenant.slug, REFRESH_SEGMENTS, {"segment_id": saved.id})
        tenant_db.commit()
    audit.record(session, actor=principal.actor, tenant_id=principal.tenant.id, target=f"segment {saved.id}",
                 action="segment.create" if segment_id is None else "segment.update",
                 detail={"name": saved.name}, **client_info(request))  # fmt: skip
    session.commit()
    url = f"{_base(principal)}/{saved.id}"
    if request.headers.get("hx-request"):
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def _not_saved(
    request: Request,
    session: Session,
    principal: Principal,
    rule: Any,
    segment: Segment | None,
    name: str,
    description: str,
    exc: RuleError | SegmentConflict,
) -> Response:
    if isinstance(exc, SegmentConflict):
        message, problems = f"Not saved: {exc}", []
    else:
        naming = [p.message for p in exc.problems if p.path == "name"]
        problems = [p for p in exc.problems if p.path != "name"]
        message = (
            f"Not saved: the name: {naming[0]}." if naming else "Not saved: fix the problems marked below."
        )
    context = _builder_context(request, session, principal, rule, segment, name=name, description=description,
                               save_error=message, extra_problems=problems)  # fmt: skip
    template = (
        "segments/_builder_response.html" if request.headers.get("hx-request") else "segments/builder.html"
    )
    return render(request, template, context, status_code=422)


@router.post("/new", include_in_schema=False)
async def create_segment(request: Request, session: ControlDB, principal: Marketer) -> Response:
    """Save a new segment, queue its first evaluation, audit it, and show it."""
    form = await request.form()
    return await run_in_threadpool(_save, request, session, principal, form, None)


@router.post("/{segment_id:int}/edit", include_in_schema=False)
async def update_segment(
    request: Request, segment_id: int, session: ControlDB, principal: Marketer
) -> Response:
    """Save changes to a segment, queue its re-evaluation, audit it, and show it."""
    form = await request.form()
    return await run_in_threadpool(_save, request, session, principal, form, segment_id)


def _segment_or_404(principal: Principal, segment_id: int) -> Segment:
    with tenant_session(principal.tenant.database) as tenant_db:
        try:
            return service.get_segment(tenant_db, segment_id)
        except SegmentNotFound as exc:
            raise HTTPException(404, str(exc)) from exc


def chart(history: Sequence[tuple[date, int]], width: int = 640, height: int = 120) -> dict[str, Any] | None:
    """Bars of the size per day, scaled to ``width`` x ``height`` (None without history)."""
    if not history:
        return None
    top = max(size for _, size in history) or 1
    step = width / len(history)
    bars = []
    for i, (day, size) in enumerate(history):
        tall = max(size / top * height, 1.0)
        bars.append({"x": round(i * step + step * 0.1, 1), "y": round(height - tall, 1),
                     "w": round(max(step * 0.8, 1.0), 1), "h": round(tall, 1), "title": f"{day}: {size:,}"})  # fmt: skip
    return {"width": width, "height": height, "bars": bars, "top": top, "first": history[0][0],
            "last": history[-1][0], "latest": history[-1][1]}  # fmt: skip


def _stale(segment: Segment) -> bool:
    """Whether the last count is older than the last change (a re-evaluation is due)."""
    if segment.counted_at is None:
        return True
    counted, updated = (t.replace(tzinfo=None) for t in (segment.counted_at, segment.updated_at))
    return counted < updated


def _members_context(tenant_db: Session, segment: Segment, after: str) -> dict[str, Any]:
    assert segment.id is not None
    rows, cursor = service.members(tenant_db, segment.id, after or None, MEMBERS_PAGE)
    return {"members": rows, "cursor": cursor, "after": after}


def _detail(
    request: Request,
    session: Session,
    principal: Principal,
    segment_id: int,
    after: str = "",
    error: str | None = None,
    status: int = 200,
) -> Response:
    scope = tenant_scope(session, principal.tenant)
    with tenant_session(principal.tenant.database) as tenant_db:
        try:
            segment = service.get_segment(tenant_db, segment_id)
        except SegmentNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        options = load_options(tenant_db, scope, segment_id)
        live = evaluate(tenant_db, scope, segment.rule, segment_id)
        history = service.size_history(tenant_db, segment_id)
        members = _members_context(tenant_db, segment, after)
        users = service.referrers(tenant_db, segment_id)
    context = page_context(
        request, session, principal, section="segments", segment=segment, base=_base(principal),
        words=describe(normalize(segment.rule), options), preview=live, chart=chart(history),
        stale=_stale(segment), error=error, used_by=users, **members,
    )  # fmt: skip
    return render(request, "segments/detail.html", context, status_code=status)


@router.get("/{segment_id:int}", include_in_schema=False)
def segment_page(
    request: Request, segment_id: int, session: ControlDB, principal: Reader, after: str = ""
) -> Response:
    """One segment: its rule in words, size over time, a sample, reach per channel, its members."""
    return _detail(request, session, principal, segment_id, after)


@router.get("/{segment_id:int}/size", include_in_schema=False)
def size_fragment(request: Request, segment_id: int, principal: Reader) -> Response:
    """The size and when it was counted (polled while an evaluation is due)."""
    segment = _segment_or_404(principal, segment_id)
    with tenant_session(principal.tenant.database) as tenant_db:
        history = service.size_history(tenant_db, segment_id)
    stale = _stale(segment)
    context = {"principal": principal, "segment": segment, "stale": stale, "base": _base(principal),
               "chart": chart(history)}  # fmt: skip
    response = render(request, "segments/_size.html", context)
    if not stale:
        response.headers["HX-Trigger"] = "segment-counted"  # the member list reloads itself
    return response


@router.get("/{segment_id:int}/members", include_in_schema=False)
def members_fragment(request: Request, segment_id: int, principal: Reader, after: str = "") -> Response:
    """One page of current members (after the cursor ``after``)."""
    with tenant_session(principal.tenant.database) as tenant_db:
        try:
            segment = service.get_segment(tenant_db, segment_id)
        except SegmentNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        context = {"principal": principal, "segment": segment, "base": _base(principal),
                   **_members_context(tenant_db, segment, after)}  # fmt: skip
    return render(request, "segments/_members.html", context)


@router.post("/{segment_id:int}/archive", include_in_schema=False)
def archive_segment(request: Request, segment_id: int, session: ControlDB, principal: Marketer) -> Response:
    """Archive a segment (refused while other segments use it); its members exit."""
    with tenant_session(principal.tenant.database) as tenant_db:
        try:
            segment = service.archive_segment(tenant_db, segment_id, principal.actor)
        except SegmentNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except SegmentConflict as exc:
            tenant_db.rollback()
            return _detail(request, session, principal, segment_id, error=f"Not archived: {exc}", status=409)
        name = segment.name
        tenant_db.commit()
    audit.record(session, actor=principal.actor, action="segment.archive", tenant_id=principal.tenant.id,
                 target=f"segment {segment_id}", detail={"name": name}, **client_info(request))  # fmt: skip
    session.commit()
    return RedirectResponse(f"{_base(principal)}?archived={quote(name)}", status_code=303)


def csv_lines(database: str, segment_id: int) -> Iterator[str]:
    """The members as CSV (profile_id, name, email, phone, entered_at), in chunks."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    with tenant_session(database) as tenant_db:
        for row in service.export_rows(tenant_db, segment_id):
            writer.writerow(row)
            if buffer.tell() > 64 * 1024:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


@router.get("/{segment_id:int}/export.csv", include_in_schema=False)
def export_csv(request: Request, segment_id: int, session: ControlDB, principal: Reader) -> Response:
    """Every current member with their email and phone, as a CSV download (audited)."""
    segment = _segment_or_404(principal, segment_id)
    audit.record(session, actor=principal.actor, action="segment.export", tenant_id=principal.tenant.id,
                 target=f"segment {segment_id}", detail={"name": segment.name}, **client_info(request))  # fmt: skip
    session.commit()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", segment.name).strip("-")[:80] or f"segment-{segment_id}"
    return StreamingResponse(csv_lines(principal.tenant.database, segment_id), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{stem}.csv"'})  # fmt: skip
