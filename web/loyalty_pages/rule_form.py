"""The earning-rule editor: what was typed, read back into a :class:`~core.loyalty.programs.RuleIn`.

The event's property filters (``where``) are kept as JSON in a hidden field, with one set of
inputs per filter (``where.<i>.key``, ``where.<i>.op`` and the audience builder's value inputs
under ``where.<i>.``), read back as the builder reads an event condition's filters. The profile
condition is the audience builder's rule tree in the same form (read with
:func:`web.segment_builder.form.rule_from_form`); an empty "all" group means everyone. Start and
end are typed in the tenant's zone. Inputs that the chosen kind hides are carried in hidden
fields, so switching kinds loses nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from starlette.datastructures import FormData

from core.loyalty.models import EarningRule, RuleKind
from core.loyalty.programs import RuleIn
from core.plugin_api import SegmentConditionType
from core.segments.rules import KIND_OPS, Kind, RuleError
from web.campaign_pages.form import FormInvalid, Problems
from web.loyalty_pages.problems import validation_problems
from web.segment_builder.form import rule_from_form
from web.segment_builder.values import MISSING, Fields, read_value
from web.segment_builder.view import OP_LABELS, value_view

KINDS = {
    RuleKind.fixed.value: "Fixed points for each event",
    RuleKind.per_amount.value: "Points per unit of an amount",
    RuleKind.multiplier.value: "Multiplier of what other rules earn",
}
EVERYONE: dict[str, Any] = {"all": []}
LOCAL = "%Y-%m-%dT%H:%M"  # what a datetime-local input holds
FILTER_PATH = re.compile(r"where\[(\d+)\]\.?(.*)")
FILTER_PARTS = {"key": "property", "op": "operator", "value": "value"}


@dataclass
class RuleForm:
    """Everything the rule editor holds, as typed."""

    name: str = ""
    description: str = ""
    event: str = ""
    kind: str = RuleKind.fixed.value
    points: str = ""
    amount_property: str = ""
    tier_multiplier: bool = True
    cap_per_day: str = ""
    cap_per_month: str = ""
    starts_at: str = ""
    ends_at: str = ""
    where: list[Any] = field(default_factory=list)
    profile_rule: dict[str, Any] = field(default_factory=lambda: dict(EVERYONE))

    @property
    def where_json(self) -> str:
        """The filters as the hidden field keeps them."""
        return json.dumps(self.where)


def _number(value: float | int | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


def _local(moment: datetime | None, zone: ZoneInfo) -> str:
    if moment is None:
        return ""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(zone).strftime(LOCAL)


def from_rule(rule: EarningRule, zone: ZoneInfo) -> RuleForm:
    """The editor filled with a saved rule (its dates in the tenant's zone)."""
    return RuleForm(
        name=rule.name, description=rule.description, event=rule.event, kind=rule.kind.value,
        points=_number(rule.points), amount_property=rule.amount_property or "",
        tier_multiplier=rule.tier_multiplier, cap_per_day=_number(rule.cap_per_day),
        cap_per_month=_number(rule.cap_per_month), starts_at=_local(rule.starts_at, zone),
        ends_at=_local(rule.ends_at, zone), where=json.loads(json.dumps(rule.where)),
        profile_rule=json.loads(json.dumps(rule.profile_rule)) if rule.profile_rule else dict(EVERYONE),
    )  # fmt: skip


def _read_filters(f: Fields) -> list[Any]:
    try:
        before = json.loads(f.text("where") or "[]")
    except ValueError:
        before = []
    filters: list[Any] = []
    for i, item in enumerate(before if isinstance(before, list) else []):
        spot = f"where.{i}."
        if not isinstance(item, dict) or not f.has(spot + "op"):
            filters.append(item)  # not rendered as inputs: kept as it was
            continue
        op_before = str(item.get("op", "="))
        op = f.text(spot + "op", op_before)
        value = read_value(f, spot, op_before, op, Kind.json, (), item.get("value"))
        entry = {"key": f.text(spot + "key", str(item.get("key", ""))).strip(), "op": op}
        filters.append(entry if value is MISSING else {**entry, "value": value})
    return filters


def read_rule_form(
    form: FormData | Mapping[str, Any], conditions: Mapping[str, SegmentConditionType]
) -> RuleForm:
    """The editor as posted, its filters and profile condition included."""
    f = Fields(form)
    kind = f.text("kind", RuleKind.fixed.value)
    return RuleForm(
        name=f.text("name"), description=f.text("description"), event=f.text("event").strip(),
        kind=kind if kind in KINDS else RuleKind.fixed.value, points=f.text("points").strip(),
        amount_property=f.text("amount_property").strip(), tier_multiplier=f.text("tier_multiplier") == "on",
        cap_per_day=f.text("cap_per_day").strip(), cap_per_month=f.text("cap_per_month").strip(),
        starts_at=f.text("starts_at").strip(), ends_at=f.text("ends_at").strip(), where=_read_filters(f),
        profile_rule=rule_from_form(form, conditions),
    )  # fmt: skip


def apply_action(form: RuleForm, action: str) -> RuleForm:
    """The editor after ``where-add`` or ``where-remove:<i>`` (anything else changes nothing)."""
    if action == "where-add":
        form.where.append({"key": "", "op": "=", "value": ""})
    elif action.startswith("where-remove:"):
        index = action.partition(":")[2]
        if index.isdigit() and int(index) < len(form.where):
            del form.where[int(index)]
    return form


def filters_view(form: RuleForm) -> list[dict[str, Any]]:
    """What each filter's inputs show (the audience builder's value inputs for its operator)."""
    allowed = [str(op) for op in KIND_OPS[Kind.json]]
    views = []
    for i, item in enumerate(form.where):
        item = item if isinstance(item, dict) else {}
        op = str(item.get("op", "="))
        ops = [(value, OP_LABELS.get(value, value)) for value in allowed]
        if op not in allowed:
            ops.insert(0, (op, f"{op} (unknown)"))
        views.append({"index": i, "key": str(item.get("key", "")), "op": op, "ops": ops,
                      "value": value_view(op, item.get("value"), Kind.json)})  # fmt: skip
    return views


def _moment(text: str, zone: ZoneInfo, name: str, problems: Problems) -> datetime | None:
    if not text:
        return None
    try:
        local = datetime.fromisoformat(text)
    except ValueError:
        problems.add(name, "A date and time, such as 2026-05-01 09:00.")
        return None
    return local.replace(tzinfo=zone).astimezone(UTC) if local.tzinfo is None else local.astimezone(UTC)


def to_rule_in(form: RuleForm, zone: ZoneInfo) -> RuleIn:
    """The rule the editor describes; :class:`FormInvalid` with each problem by its input.

    The filters' and profile condition's own problems are the service's to find: see
    :func:`rule_error_problems`.
    """
    problems = Problems()
    starts_at = _moment(form.starts_at, zone, "starts_at", problems)
    ends_at = _moment(form.ends_at, zone, "ends_at", problems)
    if starts_at and ends_at and ends_at <= starts_at:
        problems.add("ends_at", "The end comes after the start.")
    data = {
        "name": form.name.strip(), "description": form.description.strip(), "event": form.event,
        "where": form.where, "profile_rule": None if form.profile_rule == EVERYONE else form.profile_rule,
        "kind": form.kind, "points": form.points,
        "amount_property": (form.amount_property or None) if form.kind == RuleKind.per_amount else None,
        "tier_multiplier": form.tier_multiplier, "cap_per_day": form.cap_per_day or None,
        "cap_per_month": form.cap_per_month or None, "starts_at": starts_at, "ends_at": ends_at,
    }  # fmt: skip
    body: RuleIn | None = None
    try:
        body = RuleIn.model_validate(data)
    except ValidationError as exc:
        found = validation_problems(exc, model_wide="ends_at")
        for key, messages in found.fields.items():
            if key not in problems.fields:  # a date that could not be read is already explained
                problems.fields[key] = messages
        problems.general += found.general
    if problems or body is None:
        raise FormInvalid(problems)
    return body


def rule_error_problems(exc: RuleError) -> Problems:
    """The problems of the event name and the filters by their inputs (``where.<i>``).

    Those of the profile condition are shown next to its conditions by the audience builder,
    which finds the same ones: here they are only announced.
    """
    problems = Problems()
    profile = False
    for problem in exc.problems:
        found = FILTER_PATH.fullmatch(problem.path)
        if problem.path == "event":
            problems.add("event", problem.message)
        elif found:
            part = FILTER_PARTS.get(found.group(2), found.group(2))
            problems.add(f"where.{found.group(1)}", f"{part}: {problem.message}" if part else problem.message)
        elif problem.path.startswith("profile_rule"):
            profile = True
        else:
            problems.add("where" if problem.path.startswith("where") else None, problem.message)
    if profile:
        problems.add(None, "The profile condition has problems: see the messages next to its conditions.")
    return problems
