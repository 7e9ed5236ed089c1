"""Segment rules: the JSON tree marketers build, checked and turned into typed nodes.

A rule is a group or a condition::

    {"all": [rule, ...]}   every one holds        {"any": [rule, ...]}   at least one holds
    {"not": rule}          it does not hold

    {"type": "trait", "key": "country", "op": "=", "value": "FR"}
    {"type": "computed", "key": "rfm_segment", "op": "in", "value": ["champions", "loyal"]}
    {"type": "event", "event": "Order Completed", "where": [{"key": "currency", "op": "=", "value": "EUR"}],
     "measure": "sum", "property": "revenue", "op": ">=", "value": 100, "window": {"last_days": 30}}
    {"type": "event", "event": "Email Opened", "performed": false, "window": {"last_days": 90}}
    {"type": "segment", "segment": 12}
    {"type": "consent", "channel": "whatsapp", "purpose": "marketing"}
    {"type": "loyalty", "program": 1, "field": "tier", "op": "in", "value": ["Gold", "Platinum"]}
    {"type": "<plugin condition key>", "params": {...}}

:func:`parse_rule` checks everything (operators, value types, keys, referenced segments and
cycles, loyalty programs and their tiers, plugin condition parameters) and raises
:class:`RuleError` listing every problem with its place in the tree, so the API answers 422 and
the builder shows it next to the condition.
The meaning of each operator is in :mod:`core.segments.semantics`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import BaseModel, ValidationError

from core.plugin_api import SegmentConditionType
from core.traits.rfm import RfmSegment

MAX_DEPTH = 12
MAX_CONDITIONS = 200
MAX_DAYS = 36_600
KEY = re.compile(r'^[^"\\\x00-\x1f]{1,200}$')
DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class Op(enum.StrEnum):
    """Comparison operators."""

    eq = "="
    ne = "!="
    lt = "<"
    gt = ">"
    lte = "<="
    gte = ">="
    between = "between"
    in_ = "in"
    not_in = "not in"
    contains = "contains"
    is_set = "is set"
    is_not_set = "is not set"
    within_last_days = "within last days"
    more_than_days_ago = "more than days ago"
    within_next_days = "within next days"
    birthday_within_days = "birthday within days"


ORDERING = {Op.lt, Op.gt, Op.lte, Op.gte}
RELATIVE = {Op.within_last_days, Op.more_than_days_ago, Op.within_next_days, Op.birthday_within_days}
MEASURE_OPS = (Op.eq, Op.ne, Op.lt, Op.gt, Op.lte, Op.gte, Op.between)


class Kind(enum.StrEnum):
    """What a field holds: JSON of any type (traits, properties), or one typed column."""

    json = "json"
    number = "number"
    instant = "instant"
    text = "text"


KIND_OPS: dict[Kind, tuple[Op, ...]] = {
    Kind.json: tuple(Op),
    Kind.number: (Op.eq, Op.ne, Op.lt, Op.gt, Op.lte, Op.gte, Op.between, Op.in_, Op.not_in, Op.is_set,
                  Op.is_not_set),
    Kind.instant: (Op.lt, Op.gt, Op.lte, Op.gte, Op.between, Op.is_set, Op.is_not_set, Op.within_last_days,
                   Op.more_than_days_ago, Op.within_next_days),
    Kind.text: (Op.eq, Op.ne, Op.in_, Op.not_in, Op.contains, Op.is_set, Op.is_not_set),
}  # fmt: skip


@dataclass(frozen=True)
class ComputedField:
    """A field Tessera computes; ``table`` is ``computed`` (buyers only) or ``profile``."""

    key: str
    label: str
    kind: Kind
    table: str = "computed"
    zero_when_missing: bool = False  # a profile without purchases has 0 orders and 0 revenue
    choices: tuple[str, ...] = ()


COMPUTED_FIELDS: dict[str, ComputedField] = {
    f.key: f
    for f in (
        ComputedField("orders", "Orders", Kind.number, zero_when_missing=True),
        ComputedField("revenue", "Historical revenue", Kind.number, zero_when_missing=True),
        ComputedField("first_order_at", "First order", Kind.instant),
        ComputedField("last_order_at", "Last order", Kind.instant),
        ComputedField("rfm_recency", "RFM recency score", Kind.number),
        ComputedField("rfm_frequency", "RFM frequency score", Kind.number),
        ComputedField("rfm_monetary", "RFM monetary score", Kind.number),
        ComputedField("rfm_segment", "RFM group", Kind.text, choices=tuple(s.value for s in RfmSegment)),
        ComputedField("churn_risk", "Churn risk", Kind.number),
        ComputedField("expected_purchases_30", "Expected purchases, next 30 days", Kind.number),
        ComputedField("expected_purchases_90", "Expected purchases, next 90 days", Kind.number),
        ComputedField("predicted_clv", "Predicted lifetime value (365 days)", Kind.number),
        ComputedField("first_seen", "First seen", Kind.instant, table="profile"),
        ComputedField("last_seen", "Last seen", Kind.instant, table="profile"),
    )
}


@dataclass(frozen=True)
class LoyaltyField:
    """A member's value in a loyalty program (:class:`core.loyalty.standing.Standing` has them all)."""

    key: str
    label: str
    kind: Kind
    zero_when_missing: bool = False  # a non-member has 0 points and 0 badges, but no tier


LOYALTY_FIELDS: dict[str, LoyaltyField] = {
    f.key: f
    for f in (
        LoyaltyField("balance", "Loyalty balance", Kind.number, zero_when_missing=True),
        LoyaltyField("earned", "Points earned", Kind.number, zero_when_missing=True),
        LoyaltyField("redeemed", "Points redeemed", Kind.number, zero_when_missing=True),
        LoyaltyField("expired", "Points expired", Kind.number, zero_when_missing=True),
        LoyaltyField("qualifying", "Points or spend toward tiers", Kind.number, zero_when_missing=True),
        LoyaltyField("tier", "Loyalty tier", Kind.text),
        LoyaltyField("to_next_tier", "Points to next tier", Kind.number),
        LoyaltyField("badges", "Badges earned", Kind.number, zero_when_missing=True),
    )
}


@dataclass(frozen=True)
class LoyaltyProgramRef:
    """A loyalty program a rule may name: its id, key, name, status and tier names (lowest first)."""

    id: int
    key: str
    name: str
    active: bool = True
    tiers: tuple[str, ...] = ()


# --- the typed nodes ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Test:
    """An operator and its checked operand (dates as ``YYYY-MM-DD`` strings, ranges as pairs)."""

    op: Op
    value: Any = None


@dataclass(frozen=True)
class Trait:
    """A profile trait (JSON) passes ``test``."""

    key: str
    test: Test


@dataclass(frozen=True)
class Computed:
    """A computed field passes ``test``."""

    field: ComputedField
    test: Test


@dataclass(frozen=True)
class Window:
    """Rolling (``last_days``) or calendar (``since``/``until``, inclusive tenant dates)."""

    last_days: int | None = None
    since: date | None = None
    until: date | None = None


@dataclass(frozen=True)
class Behaviour:
    """The count, sum or average of ``property`` over matching events passes ``test``.

    Zero events count 0 and sum 0; their average is undefined, so no average test holds.
    """

    event: str
    where: tuple[Trait, ...] = ()
    measure: str = "count"
    property: str | None = None
    test: Test = Test(Op.gte, 1)
    window: Window | None = None


@dataclass(frozen=True)
class Member:
    """The profile matches the rule of segment ``segment_id`` (checked inline: always current)."""

    segment_id: int
    rule: Rule


@dataclass(frozen=True)
class Consent:
    """The profile granted consent for ``channel`` and ``purpose``."""

    channel: str
    purpose: str = "marketing"


@dataclass(frozen=True)
class Loyalty:
    """The profile's ``field`` in loyalty program ``program_id`` passes ``test``.

    A profile without a member row is not a member: its points and badges count 0, it has no tier
    and no distance to the next one.
    """

    program_id: int
    field: LoyaltyField
    test: Test


@dataclass(frozen=True)
class PluginCondition:
    """A condition type a plugin registered, with its validated parameters."""

    type: SegmentConditionType
    params: BaseModel


@dataclass(frozen=True)
class Group:
    """``all`` (every child) or ``any`` (at least one); an empty ``all`` holds, an empty ``any`` not."""

    kind: str
    children: tuple[Rule, ...]


@dataclass(frozen=True)
class Not:
    """The child does not hold."""

    child: Rule


Rule = Group | Not | Trait | Computed | Behaviour | Member | Consent | Loyalty | PluginCondition


def walk(rule: Rule) -> list[Rule]:
    """Every node of ``rule``, depth first (inside referenced segments too)."""
    nodes: list[Rule] = [rule]
    if isinstance(rule, Group):
        for child in rule.children:
            nodes += walk(child)
    elif isinstance(rule, Not):
        nodes += walk(rule.child)
    elif isinstance(rule, Member):
        nodes += walk(rule.rule)
    return nodes


# --- parsing ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """One thing wrong in a rule, at ``path`` (e.g. ``all[2].value``)."""

    path: str
    message: str


class RuleError(ValueError):
    """The rule is not valid; ``problems`` says where and why."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(f"{p.path}: {p.message}" if p.path else p.message for p in problems))


@dataclass
class RuleContext:
    """What a rule may refer to.

    ``segment_rule(id)`` returns another segment's stored rule JSON (None if there is none);
    ``self_id`` is the segment being saved (a rule may not reach it); ``conditions`` are the plugin
    condition types of the tenant's enabled plugins. ``loyalty_program(id)`` returns the loyalty
    program a condition names (None if there is none); without it, program ids are taken as they
    are (a stored rule was checked when it was saved).
    """

    segment_rule: Callable[[int], Any | None] = lambda _id: None
    self_id: int | None = None
    conditions: Mapping[str, SegmentConditionType] = field(default_factory=dict)
    loyalty_program: Callable[[int], LoyaltyProgramRef | None] | None = None


def parse_rule(data: Any, context: RuleContext | None = None) -> Rule:
    """The typed rule for ``data``; :class:`RuleError` lists every problem found."""
    parser = _Parser(context or RuleContext())
    rule = parser.rule(data, "", 0, ())
    if parser.problems:
        raise RuleError(parser.problems)
    assert rule is not None
    return rule


class _Parser:
    def __init__(self, context: RuleContext) -> None:
        self.context = context
        self.problems: list[Problem] = []
        self.conditions = 0

    def fail(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def rule(self, data: Any, path: str, depth: int, chain: tuple[int, ...]) -> Rule | None:
        if depth > MAX_DEPTH:
            self.fail(path, f"rules nest at most {MAX_DEPTH} levels deep")
            return None
        if not isinstance(data, dict):
            self.fail(path, "a rule is an object: a group (all, any, not) or a condition with a type")
            return None
        groups = [k for k in ("all", "any", "not") if k in data]
        if groups:
            return self.group(data, groups, path, depth, chain)
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            self.fail(path, f"a rule holds at most {MAX_CONDITIONS} conditions")
            return None
        kind = data.get("type")
        parsers = {"trait": self.trait, "computed": self.computed, "event": self.behaviour,
                   "consent": self.consent, "loyalty": self.loyalty}  # fmt: skip
        parse = parsers.get(kind) if isinstance(kind, str) else None
        if parse is not None:
            return parse(data, path)
        if kind == "segment":
            return self.member(data, path, depth, chain)
        if isinstance(kind, str) and kind in self.context.conditions:
            return self.plugin(data, path, self.context.conditions[kind])
        known = ", ".join(
            ["trait", "computed", "event", "segment", "consent", "loyalty", *sorted(self.context.conditions)]
        )
        self.fail(_at(path, "type"), f"unknown condition type {kind!r}; use one of: {known}")
        return None

    def group(
        self, data: dict, groups: list[str], path: str, depth: int, chain: tuple[int, ...]
    ) -> Rule | None:
        if len(groups) > 1 or len(data) > 1:
            self.fail(path, "a group has exactly one key: all, any or not")
            return None
        kind = groups[0]
        value = data[kind]
        if kind == "not":
            child = self.rule(value, _at(path, "not"), depth + 1, chain)
            return Not(child) if child is not None else None
        if not isinstance(value, list):
            self.fail(_at(path, kind), f"{kind} takes a list of rules")
            return None
        children = [
            self.rule(item, f"{_at(path, kind)}[{i}]", depth + 1, chain) for i, item in enumerate(value)
        ]
        if any(child is None for child in children):
            return None
        return Group(kind, tuple(c for c in children if c is not None))

    def _fields(self, data: dict, path: str, allowed: set[str]) -> bool:
        unknown = sorted(set(data) - allowed)
        if unknown:
            self.fail(path, f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
        return not unknown

    def _key(self, data: dict, name: str, path: str) -> str | None:
        key = data.get(name)
        if not isinstance(key, str) or not KEY.match(key):
            self.fail(_at(path, name), "give a name of 1-200 characters, without quotes or backslashes")
            return None
        return key

    def trait(self, data: dict, path: str) -> Rule | None:
        if not self._fields(data, path, {"type", "key", "op", "value"}):
            return None
        key = self._key(data, "key", path)
        test = self.test(data, path, Kind.json)
        return Trait(key, test) if key is not None and test is not None else None

    def computed(self, data: dict, path: str) -> Rule | None:
        if not self._fields(data, path, {"type", "key", "op", "value"}):
            return None
        found = COMPUTED_FIELDS.get(data.get("key"))  # type: ignore[arg-type]
        if found is None:
            self.fail(_at(path, "key"), f"unknown computed trait; use one of: {', '.join(COMPUTED_FIELDS)}")
            return None
        test = self.test(data, path, found.kind, found.choices)
        return Computed(found, test) if test is not None else None

    def test(self, data: dict, path: str, kind: Kind, choices: tuple[str, ...] = ()) -> Test | None:
        raw_op = data.get("op")
        try:
            op = Op(str(raw_op))
        except ValueError:
            self.fail(
                _at(path, "op"), f"unknown operator {raw_op!r}; use one of: {', '.join(KIND_OPS[kind])}"
            )
            return None
        if op not in KIND_OPS[kind]:
            self.fail(
                _at(path, "op"),
                f"{op} does not apply to a {kind} field; use one of: {', '.join(KIND_OPS[kind])}",
            )
            return None
        problem, value = _operand(op, data.get("value"), "value" in data, kind, choices)
        if problem:
            self.fail(_at(path, "value"), problem)
            return None
        return Test(op, value)

    def behaviour(self, data: dict, path: str) -> Rule | None:
        allowed = {"type", "event", "where", "measure", "property", "op", "value", "window", "performed"}
        if not self._fields(data, path, allowed):
            return None
        event = self._key(data, "event", path)
        where: list[Trait] = []
        raw_where = data.get("where", [])
        if not isinstance(raw_where, list):
            self.fail(_at(path, "where"), "where takes a list of property filters")
        else:
            for i, item in enumerate(raw_where):
                spot = f"{_at(path, 'where')}[{i}]"
                if not isinstance(item, dict) or not self._fields(item, spot, {"key", "op", "value"}):
                    if not isinstance(item, dict):
                        self.fail(spot, "a property filter is an object with key, op and value")
                    continue
                key, checked = self._key(item, "key", spot), self.test(item, spot, Kind.json)
                if key is not None and checked is not None:
                    where.append(Trait(key, checked))
        window = self.window(data.get("window"), _at(path, "window"))
        performed = data.get("performed", True)
        if not isinstance(performed, bool):
            self.fail(_at(path, "performed"), "performed is true or false")
            return None
        measure = data.get("measure", "count")
        if measure not in ("count", "sum", "avg"):
            self.fail(_at(path, "measure"), "measure is count, sum or avg")
            return None
        prop = None
        if measure != "count":
            prop = self._key(data, "property", path)
        elif data.get("property") is not None:
            self.fail(_at(path, "property"), "a count takes no property; use measure sum or avg")
        if not performed:
            if {"op", "value", "measure"} & set(data):
                self.fail(
                    path, "performed: false stands alone; give op and value only to count, sum or average"
                )
            test: Test | None = Test(Op.eq, 0)
        elif "op" not in data and measure == "count":
            test = Test(Op.gte, 1)  # "performed X"
        else:
            test = self.measure_test(data, path)
        if event is None or test is None or window is False or len(where) != len(raw_where or []):
            return None
        return Behaviour(
            event, tuple(where), measure, prop, test, window if isinstance(window, Window) else None
        )

    def measure_test(self, data: dict, path: str) -> Test | None:
        raw_op = data.get("op")
        if raw_op not in [op.value for op in MEASURE_OPS]:
            self.fail(_at(path, "op"), f"unknown operator {raw_op!r} for a measure; use one of: "
                      f"{', '.join(MEASURE_OPS)}")  # fmt: skip
            return None
        op = Op(raw_op)
        problem, value = _operand(op, data.get("value"), "value" in data, Kind.number, ())
        if problem:
            self.fail(_at(path, "value"), problem)
            return None
        return Test(op, value)

    def window(self, data: Any, path: str) -> Window | None | bool:
        """The window, None for all time, False when invalid (already reported)."""
        if data is None:
            return None
        if (
            not isinstance(data, dict)
            or not data
            or not self._fields(data, path, {"last_days", "since", "until"})
        ):
            if not isinstance(data, dict) or not data:
                self.fail(
                    path, 'a window is {"last_days": N} or {"since": "YYYY-MM-DD", "until": "YYYY-MM-DD"}'
                )
            return False
        if "last_days" in data:
            days = data["last_days"]
            if len(data) > 1 or not _is_int(days) or not 1 <= days <= MAX_DAYS:
                self.fail(path, f"last_days stands alone and is a whole number of days, 1 to {MAX_DAYS}")
                return False
            return Window(last_days=days)
        since, until = data.get("since"), data.get("until")
        parsed = []
        for name, value in (("since", since), ("until", until)):
            if value is not None and not _is_date(value):
                self.fail(_at(path, name), "a date is written YYYY-MM-DD")
                return False
            parsed.append(date.fromisoformat(value) if value is not None else None)
        if parsed[0] and parsed[1] and parsed[0] > parsed[1]:
            self.fail(path, "since comes after until")
            return False
        return Window(since=parsed[0], until=parsed[1])

    def member(self, data: dict, path: str, depth: int, chain: tuple[int, ...]) -> Rule | None:
        if not self._fields(data, path, {"type", "segment"}):
            return None
        segment_id = data.get("segment")
        if not isinstance(segment_id, int) or isinstance(segment_id, bool):
            self.fail(_at(path, "segment"), "segment takes the id of another segment")
            return None
        if segment_id == self.context.self_id or segment_id in chain:
            self.fail(_at(path, "segment"), f"segment {segment_id} refers back to itself (a cycle)")
            return None
        stored = self.context.segment_rule(segment_id)
        if stored is None:
            self.fail(_at(path, "segment"), f"there is no segment {segment_id}")
            return None
        before = len(self.problems)
        inner = self.rule(stored, f"{path}<segment {segment_id}>", depth + 1, (*chain, segment_id))
        if inner is None or len(self.problems) > before:
            return None
        return Member(segment_id, inner)

    def consent(self, data: dict, path: str) -> Rule | None:
        if not self._fields(data, path, {"type", "channel", "purpose"}):
            return None
        channel = self._key(data, "channel", path)
        purpose = data.get("purpose", "marketing")
        if not isinstance(purpose, str) or not KEY.match(purpose):
            self.fail(_at(path, "purpose"), "purpose is a name such as marketing")
            return None
        return Consent(channel, purpose) if channel else None

    def loyalty(self, data: dict, path: str) -> Rule | None:
        if not self._fields(data, path, {"type", "program", "field", "op", "value"}):
            return None
        before = len(self.problems)
        program_id: Any = data.get("program")
        program = None
        if not _is_int(program_id):
            self.fail(_at(path, "program"), "program takes the id of a loyalty program")
        elif self.context.loyalty_program is not None:
            program = self.context.loyalty_program(program_id)
            if program is None:
                self.fail(_at(path, "program"), f"there is no loyalty program {program_id}")
        name = data.get("field")
        found = LOYALTY_FIELDS.get(name) if isinstance(name, str) else None
        if found is None:
            known = ", ".join(LOYALTY_FIELDS)
            self.fail(_at(path, "field"), f"unknown loyalty field {name!r}; use one of: {known}")
            return None
        choices = program.tiers if program is not None and found.key == "tier" else ()
        test = self.test(data, path, found.kind, choices)
        if test is None or len(self.problems) > before:
            return None
        return Loyalty(program_id, found, test)

    def plugin(self, data: dict, path: str, condition: SegmentConditionType) -> Rule | None:
        if not self._fields(data, path, {"type", "params"}):
            return None
        try:
            params = condition.Params.model_validate(data.get("params") or {})
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(p) for p in error["loc"])
                self.fail(_at(_at(path, "params"), where) if where else _at(path, "params"), error["msg"])
            return None
        return PluginCondition(condition, params)


def _at(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or not DATE.match(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _operand(op: Op, value: Any, given: bool, kind: Kind, choices: tuple[str, ...]) -> tuple[str | None, Any]:
    """(problem, checked value) for ``op`` on a field of ``kind``."""
    if op in (Op.is_set, Op.is_not_set):
        return (f"{op} takes no value", None) if given and value is not None else (None, None)
    if op in RELATIVE:
        ok = _is_int(value) and 0 <= value <= MAX_DAYS
        return (None, value) if ok else (f"{op} takes a whole number of days, 0 to {MAX_DAYS}", None)
    if op == Op.contains:
        ok = isinstance(value, str) and value != ""
        return (None, value) if ok else ("contains takes some text", None)
    if op in (Op.in_, Op.not_in):
        if not isinstance(value, list) or not value:
            return f"{op} takes a non-empty list of values", None
        checked = []
        for item in value:
            problem, item_value = _operand(Op.eq, item, True, kind, choices)
            if problem:
                return f"in the list: {problem}", None
            checked.append(item_value)
        return None, tuple(checked)
    if op == Op.between:
        if not isinstance(value, list) or len(value) != 2:
            return "between takes a list of two values, low and high", None
        low, high = (_ordered(v, kind) for v in value)
        if low is None or high is None or type(low) is not type(high):
            return f"between takes two {_ordered_name(kind)}", None
        return (None, (low, high)) if low <= high else ("between takes the low value first", None)  # type: ignore[operator]
    if op in ORDERING:
        single = _ordered(value, kind)
        return (None, single) if single is not None else (f"{op} takes {_ordered_name(kind)}", None)
    # = and !=
    if kind == Kind.number:
        return (None, float(value)) if _is_number(value) else (f"{op} takes a number", None)
    if kind == Kind.text:
        if not isinstance(value, str):
            return f"{op} takes text", None
        if choices and value not in choices:
            return f"{value!r} is not one of {', '.join(choices)}", None
        return None, value
    if isinstance(value, bool | str) or _is_number(value):
        return None, float(value) if _is_number(value) else value
    return f"{op} takes text, a number, or true/false", None


def _ordered(value: Any, kind: Kind) -> float | str | None:
    """A value that can be ordered against a field of ``kind``: a number, or a date string."""
    if kind in (Kind.number, Kind.json) and _is_number(value):
        return float(value)
    if kind in (Kind.instant, Kind.json) and _is_date(value):
        return str(value)
    return None


def _ordered_name(kind: Kind) -> str:
    return {Kind.number: "numbers", Kind.instant: "dates (YYYY-MM-DD)"}.get(
        kind, "numbers or dates (YYYY-MM-DD)"
    )
