"""The builder's view of the rule tree: what each node's inputs show, for the templates."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from core.segments.rules import COMPUTED_FIELDS, KIND_OPS, LOYALTY_FIELDS, MEASURE_OPS, Kind
from web.forms import form_fields
from web.segment_builder.options import Options
from web.segment_builder.tree import ROOT, as_dict, as_list, group_kind, is_not
from web.segment_builder.values import plain, shape, shown, window_kind
from web.segment_builder.words import MEASURE_WORDS

CONDITION_TYPES = {"trait": "Trait", "computed": "Computed", "event": "Event", "segment": "Segment",
                   "consent": "Consent", "loyalty": "Loyalty"}  # fmt: skip
OP_LABELS = {
    "=": "=", "!=": "≠", "<": "<", ">": ">", "<=": "≤", ">=": "≥", "between": "between",
    "in": "is one of", "not in": "is none of", "contains": "contains", "is set": "is set",
    "is not set": "is not set", "within last days": "within the last … days",
    "more than days ago": "more than … days ago", "within next days": "within the next … days",
    "birthday within days": "anniversary within … days",
}  # fmt: skip
MEASURE_ORDER = sorted(MEASURE_OPS, key=[">=", "<=", "=", ">", "<", "!=", "between"].index)
MEASURES = {"count": "number of times", "sum": "total of a property", "avg": "average of a property"}
WINDOWS = {"last": "in the last … days", "dates": "between dates", "all": "at any time"}


def _ops(allowed: Sequence[str], current: str, labels: Mapping[str, str]) -> list[tuple[str, str]]:
    choices = [(str(op), labels.get(str(op), str(op))) for op in allowed]
    if current not in allowed:
        choices.insert(0, (current, f"{current} (unknown)"))
    return choices


def value_view(op: str, value: Any, kind: Kind, choices: Sequence[str] = ()) -> dict[str, Any]:
    """How a test's value is shown: its inputs (by operator) and their contents."""
    text = shown if kind == Kind.json else plain
    items = value if isinstance(value, list) else [value]
    kinds = {Kind.number: "number", Kind.instant: "date", Kind.json: "text"}
    view = {"shape": shape(op), "input": "select" if choices else kinds.get(kind, "text"),
            "choices": list(choices), "selected": [str(v) for v in items], "text": "", "low": "", "high": ""}  # fmt: skip
    if view["shape"] == "pair":
        view["low"], view["high"] = (text(v) for v in (items + ["", ""])[:2])
    elif view["shape"] == "list":
        view["text"] = ", ".join(text(v) for v in items if v is not None)
    elif view["shape"] == "days":
        view["input"], view["text"] = "number", plain(value)
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
    elif kind == "loyalty":
        view.update(_loyalty_view(node, op, options))
    elif kind in options.scope.conditions:
        condition = options.scope.conditions[kind]
        view.update(label=condition.label, fields=form_fields(condition.Params, as_dict(node.get("params"))))
    else:
        view["type"] = "unknown"
    return view


def _loyalty_view(node: dict, op: str, options: Options) -> dict[str, Any]:
    program = options.program(node.get("program"))
    found = LOYALTY_FIELDS.get(str(node.get("field")))
    value_kind = found.kind if found else Kind.json
    is_tier = found is not None and found.key == "tier"
    tiers = program.tiers if program is not None and is_tier else ()
    return {
        "program": node.get("program"), "known_program": program is not None,
        "programs": [(p.id, p.name if p.active else f"{p.name} (archived)") for p in options.programs],
        "field": str(node.get("field", "")), "known": found is not None,
        "fields": [(f.key, f.label) for f in LOYALTY_FIELDS.values()],
        "op": op, "ops": _ops(KIND_OPS[value_kind], op, OP_LABELS),
        "value": value_view(op, node.get("value"), value_kind, tiers),
        "no_tiers": is_tier and program is not None and not program.tiers,
    }  # fmt: skip


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
            "window": window_kind(node.get("window")), "last_days": plain(window.get("last_days")),
            "since": str(window.get("since") or ""), "until": str(window.get("until") or ""),
            "where": filters}  # fmt: skip


def flat(view: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of a tree view, depth first."""
    nodes = [view]
    for child in view.get("children", []) + ([view["child"]] if "child" in view else []):
        nodes += flat(child)
    return nodes
