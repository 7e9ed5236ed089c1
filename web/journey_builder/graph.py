"""The definition as a graph: each step's ports and where they lead, adding and deleting steps.

A port is one way out of a step: ``next`` (send, wait, update trait, assign offer, the wallet pass
steps), ``yes``/``no`` (branch), ``on_event``/``on_timeout`` (wait for event), ``branch:<i>`` (the
i-th path of a split). The trigger leads to ``start`` through the port ``start`` of the
pseudo-step :data:`START`. A port leading nowhere (``None``) ends the journey there.
"""

from __future__ import annotations

import copy
import re
from typing import Any

START = "start"  # the pseudo-step whose one port is the definition's "start"
STEP_TYPES = {
    "send": "Send a message",
    "wait": "Wait",
    "wait_for_event": "Wait for an event",
    "branch": "Branch on a condition",
    "split": "Split (A/B test)",
    "update_trait": "Update a trait",
    "assign_offer": "Assign an offer",
    "update_pass": "Update wallet pass",
    "notify_on_pass": "Notify on wallet pass",
    "exit": "Exit",
}
BRANCHING = {"branch": ("yes", "no"), "wait_for_event": ("on_event", "on_timeout")}
KEY = re.compile(r"s(\d+)")


def steps_of(definition: dict[str, Any]) -> dict[str, Any]:
    """The definition's steps by key (an empty mapping when there are none)."""
    steps = definition.get("steps")
    return steps if isinstance(steps, dict) else {}


def _target(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def ports(step: Any) -> list[tuple[str, str | None]]:
    """The step's ports and the step each leads to (None: the journey ends there), in drawing order."""
    if not isinstance(step, dict):
        return []
    kind = step.get("type")
    if kind in BRANCHING:
        return [(port, _target(step.get(port))) for port in BRANCHING[str(kind)]]
    if kind == "split":
        branches: list[Any] = step["branches"] if isinstance(step.get("branches"), list) else []
        return [(f"branch:{i}", _target(b.get("next") if isinstance(b, dict) else None))
                for i, b in enumerate(branches)]  # fmt: skip
    if kind == "exit":
        return []
    return [("next", _target(step.get("next")))]


def target(definition: dict[str, Any], source: str, port: str) -> str | None:
    """Where ``port`` of step ``source`` (or the start) leads."""
    if source == START:
        return _target(definition.get("start"))
    return dict(ports(steps_of(definition).get(source))).get(port)


def set_target(definition: dict[str, Any], source: str, port: str, to: str | None) -> None:
    """Point ``port`` of step ``source`` (or the start) at ``to`` (None ends the journey there)."""
    if source == START:
        definition["start"] = to
        return
    step = steps_of(definition).get(source)
    if not isinstance(step, dict):
        return
    if port.startswith("branch:"):
        index = int(port.partition(":")[2])
        branches = step.get("branches")
        if isinstance(branches, list) and index < len(branches) and isinstance(branches[index], dict):
            branches[index]["next"] = to
    elif port in ("next", *BRANCHING.get(str(step.get("type")), ())):
        step[port] = to


def reachable(definition: dict[str, Any]) -> list[str]:
    """The keys of the steps reachable from the start, depth first in drawing order."""
    steps, seen, order = steps_of(definition), set(), []
    pending = [_target(definition.get("start"))]
    while pending:
        key = pending.pop()
        if key is None or key in seen or key not in steps:
            continue
        seen.add(key)
        order.append(key)
        pending.extend(reversed([to for _, to in ports(steps[key])]))
    return order


def new_key(definition: dict[str, Any]) -> str:
    """A key no step has yet: ``s<n>`` after the highest one."""
    numbers = [int(m.group(1)) for key in steps_of(definition) if (m := KEY.fullmatch(str(key)))]
    return f"s{max(numbers, default=0) + 1}"


def insert(
    definition: dict[str, Any], source: str, port: str, step: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """The definition with ``step`` placed on the connector from ``source``'s ``port``, and its key.

    What the connector led to follows the new step through its first port.
    """
    changed = copy.deepcopy(definition)
    if not isinstance(changed.get("steps"), dict):
        changed["steps"] = {}
    key = new_key(changed)
    after = target(changed, source, port)
    changed["steps"][key] = copy.deepcopy(step)
    first = ports(step)
    if first:
        set_target(changed, key, first[0][0], after)
    set_target(changed, source, port, key)
    return changed, key


def _successors(step: Any, key: str) -> list[str]:
    found: list[str] = []
    for _, to in ports(step):
        if to is not None and to != key and to not in found:
            found.append(to)
    return found


def remove(definition: dict[str, Any], key: str) -> dict[str, Any]:
    """The definition without step ``key``.

    What led to it leads to its one next step when it has exactly one; the steps that could only be
    reached through it go with it.
    """
    changed = copy.deepcopy(definition)
    steps = steps_of(changed)
    if key not in steps:
        return changed
    before = set(reachable(changed))
    following = _successors(steps[key], key)
    replacement = following[0] if len(following) == 1 else None
    if _target(changed.get("start")) == key:
        changed["start"] = replacement
    for other, step in steps.items():
        for port, to in ports(step):
            if to == key and other != key:
                set_target(changed, other, port, replacement)
    del steps[key]
    after = set(reachable(changed))
    for gone in before - after:
        steps.pop(gone, None)
    return changed


def removed_with(definition: dict[str, Any], key: str) -> int:
    """How many other steps deleting ``key`` would delete (those only reachable through it)."""
    if key not in steps_of(definition):
        return 0
    return len(steps_of(definition)) - len(steps_of(remove(definition, key))) - 1
