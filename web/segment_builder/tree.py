"""The rule tree as the builder edits it: nodes found by path, and the edit actions.

A path says where a node is: ``r`` the root group, ``r.0`` its first child, ``r.0.n`` what a *not*
negates. :func:`apply_action` applies one button press (add, group, negate, remove, property filters).
"""

from __future__ import annotations

import copy
from typing import Any

from core.segments.rules import COMPUTED_FIELDS, LOYALTY_FIELDS, Kind, Op
from web.segment_builder.options import Options

ROOT = "r"


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


def computed_default(key: str) -> dict[str, Any]:
    """A fresh condition on the computed field ``key``, with the operator and value it starts with."""
    found = COMPUTED_FIELDS[key]
    if found.choices:
        return {"type": "computed", "key": key, "op": "in", "value": [found.choices[0]]}
    if found.kind == Kind.instant:
        return {"type": "computed", "key": key, "op": Op.within_last_days.value, "value": 30}
    return {"type": "computed", "key": key, "op": ">=", "value": 1}


def loyalty_default(program_id: Any, key: str) -> dict[str, Any]:
    """A fresh condition on loyalty field ``key`` of a program, with the operator and value it starts
    with (a tier: "has one", whichever the program's tiers are)."""
    condition: dict[str, Any] = {"type": "loyalty", "program": program_id, "field": key}
    if LOYALTY_FIELDS[key].kind == Kind.text:
        return {**condition, "op": "is set"}
    if key == "to_next_tier":
        return {**condition, "op": "<=", "value": 100}
    return {**condition, "op": ">=", "value": 1}


def new_condition(kind: str, options: Options) -> dict[str, Any] | None:
    """A fresh condition of ``kind`` with sensible defaults (None for an unknown kind)."""
    if kind == "trait":
        return {"type": "trait", "key": "", "op": "=", "value": ""}
    if kind == "computed":
        return computed_default("orders")
    if kind == "event":
        return {"type": "event", "event": "", "op": ">=", "value": 1, "window": {"last_days": 30}}
    if kind == "segment":
        return {"type": "segment", "segment": options.segments[0][0] if options.segments else None}
    if kind == "consent":
        channel = next(iter(sorted(options.scope.channels)), "")
        return {"type": "consent", "channel": channel, "purpose": "marketing"}
    if kind == "loyalty":
        return loyalty_default(options.programs[0].id, "balance") if options.programs else None
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
