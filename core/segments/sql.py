"""One rule, one SQL query: the members of a segment for counts, lists and batch evaluation.

Every condition becomes a boolean over the ``profile`` row and, where it needs more, a LEFT JOIN
of a table with at most one row per profile: the computed traits, one aggregate of events per
behaviour condition, one consent row per consent condition, one member value per loyalty
condition. Each condition is made two-valued (``coalesce(..., false)``) so ``not`` and ``any``
mean in SQL what they mean in memory (:mod:`core.segments.semantics` is the reference; a property
test holds the two together).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from core.consent.models import Consent as ConsentRow
from core.db.engines import json_dumps
from core.ingest.models import Event
from core.loyalty.standing import CHALLENGE, MEMBER, PROGRESS, TIER
from core.profiles.models import Profile
from core.segments import rules as r
from core.segments.clock import Clock
from core.segments.semantics import (
    NEGATED,
    ascii_lower,
    birthday_window,
    instant_bounds,
    measure_matches,
    relative_range,
    typed_matches,
)
from core.traits.models import ComputedTraits

PROFILE = Profile.__table__  # type: ignore[attr-defined]
EVENT = Event.__table__  # type: ignore[attr-defined]
TRAITS = ComputedTraits.__table__  # type: ignore[attr-defined]
CONSENT = ConsentRow.__table__  # type: ignore[attr-defined]
UPPER, LOWER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"
Bool = ColumnElement[bool]
_PG = postgresql.dialect()


class Json:
    """Reading one key of a JSON column, per dialect."""

    def __init__(self, dialect: str, column: Any, key: str) -> None:
        self.postgres = dialect == "postgresql"
        self.column, self.key = column, key
        self.path = '$."' + key + '"'
        # PostgreSQL spells the functions of json and of jsonb (binary) columns differently.
        self.prefix = (
            "jsonb" if self.postgres and isinstance(column.type.dialect_impl(_PG), JSONB) else "json"
        )

    def kind_in(self, postgres: tuple[str, ...], sqlite: tuple[str, ...]) -> Bool:
        """The value's JSON type is one of these (PostgreSQL and SQLite spell types differently)."""
        if self.postgres:
            return getattr(sa.func, f"{self.prefix}_typeof")(self.column[self.key]).in_(postgres)
        return sa.func.json_type(self.column, self.path).in_(sqlite)

    def is_string(self) -> Bool:
        return self.kind_in(("string",), ("text",))

    def is_set(self) -> Bool:
        return self.kind_in(("string", "number", "boolean", "array", "object"),
                            ("text", "integer", "real", "true", "false", "array", "object"))  # fmt: skip

    def text(self) -> Any:
        """The value as text (meaningful for strings)."""
        if self.postgres:
            return self.column[self.key].as_string()
        return sa.func.json_extract(self.column, self.path)

    def number(self) -> Any:
        """The value as a float when it is a JSON number, else NULL."""
        value = (
            sa.cast(self.text(), sa.Float) if self.postgres else sa.func.json_extract(self.column, self.path)
        )
        return sa.case((self.kind_in(("number",), ("integer", "real")), value), else_=sa.null())

    def boolean_is(self, flag: bool) -> Bool:
        word = "true" if flag else "false"
        if self.postgres:
            return self.kind_in(("boolean",), ()) & (self.text() == word)
        return sa.func.json_type(self.column, self.path) == word

    def date(self) -> Any:
        """The ``YYYY-MM-DD`` the text starts with, else NULL."""
        prefix = sa.func.substr(self.text(), 1, 10)
        looks = (prefix.op("~")("^[0-9]{4}-[0-9]{2}-[0-9]{2}$") if self.postgres
                 else prefix.op("GLOB")("[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"))  # fmt: skip
        return sa.case((self.is_string() & looks, prefix), else_=sa.null())

    def lowered(self, text: Any) -> Any:
        return sa.func.translate(text, UPPER, LOWER) if self.postgres else sa.func.lower(text)

    def contains(self, needle: str) -> Bool:
        """A string containing ``needle`` or an array with a string equal to it (A-Z caseless)."""
        needle = ascii_lower(needle)
        if self.postgres:
            in_text = sa.func.strpos(self.lowered(self.text()), needle) > 0
            elements = getattr(sa.func, f"{self.prefix}_array_elements")(self.column[self.key])
            element = elements.table_valued("value").alias("element")
            text = element.c.value.op("#>>")(sa.literal_column("'{}'"))
            in_list = sa.exists(sa.select(1).select_from(element).where(
                getattr(sa.func, f"{self.prefix}_typeof")(element.c.value) == "string",
                self.lowered(text) == needle))  # fmt: skip
        else:
            in_text = sa.func.instr(self.lowered(self.text()), needle) > 0
            element = sa.func.json_each(self.column, self.path).table_valued("value", "type").alias("element")
            in_list = sa.exists(sa.select(1).select_from(element).where(
                element.c.type == "text", self.lowered(element.c.value) == needle))  # fmt: skip
        return sa.case(
            (self.is_string(), in_text), (self.kind_in(("array",), ("array",)), in_list), else_=sa.false()
        )


def _presence_or_negation(test: r.Test, is_set: Bool, decide: Callable[[r.Test], Bool]) -> Bool | None:
    """``is set``, ``is not set``, and ``!=``/``not in`` as the two-valued opposite of ``=``/``in``
    (as :mod:`core.segments.semantics` reads them); None for the other operators."""
    if test.op == r.Op.is_set:
        return is_set
    if test.op == r.Op.is_not_set:
        return ~two_valued(is_set)
    if test.op in NEGATED:
        return ~two_valued(decide(r.Test(NEGATED[test.op], test.value)))
    return None


def json_test(json: Json, test: r.Test, clock: Clock) -> Bool:
    """``test`` on a JSON value, as SQL (possibly NULL: the caller makes it two-valued)."""
    decided = _presence_or_negation(test, json.is_set(), lambda other: json_test(json, other, clock))
    if decided is not None:
        return decided
    op, operand = test.op, test.value
    if op == r.Op.eq:
        return _json_equal(json, operand)
    if op == r.Op.in_:
        return sa.or_(*(_json_equal(json, item) for item in operand))
    if op == r.Op.contains:
        return json.contains(operand)
    if op in r.ORDERING or op == r.Op.between:
        sample = operand[0] if op == r.Op.between else operand
        left = json.number() if isinstance(sample, float) else json.date()
        return _compare(left, op, operand)
    if op == r.Op.birthday_within_days:
        window = birthday_window(clock, operand)
        if window is None:
            return json.date().is_not(None)
        start, end = window
        month_day = sa.func.substr(json.date(), 6, 5)
        if start <= end:
            return month_day.between(start, end)
        return (month_day >= start) | (month_day <= end)
    low, high = relative_range(op, operand, clock)
    day = json.date()
    return sa.and_(day.is_not(None), *([day >= low] if low else []), *([day <= high] if high else []))


def _json_equal(json: Json, operand: Any) -> Bool:
    if json.prefix == "jsonb":  # containment of a scalar is equality of the same JSON type, and fast
        document = sa.cast(sa.literal(json_dumps({json.key: operand})), JSONB)
        return json.column.op("@>", is_comparison=True)(document)
    if isinstance(operand, bool):
        return json.boolean_is(operand)
    if isinstance(operand, float):
        return json.number() == operand
    return json.is_string() & (json.text() == operand)


def _compare(left: Any, op: r.Op, operand: Any) -> Bool:
    if op == r.Op.between:
        return left.between(operand[0], operand[1])
    return {r.Op.lt: left < operand, r.Op.gt: left > operand, r.Op.lte: left <= operand}.get(
        op, left >= operand
    )


def typed_test(column: Any, kind: r.Kind, test: r.Test, clock: Clock, postgres: bool) -> Bool:
    """``test`` on a typed column (NULL: missing)."""
    decided = _presence_or_negation(
        test, column.is_not(None), lambda other: typed_test(column, kind, other, clock, postgres)
    )
    if decided is not None:
        return decided
    op, operand = test.op, test.value
    if kind == r.Kind.instant:
        low, high = instant_bounds(test, clock)
        return sa.and_(
            column.is_not(None), *([column >= low] if low else []), *([column < high] if high else [])
        )
    if op == r.Op.contains:
        needle = ascii_lower(operand)
        if postgres:
            return sa.func.strpos(sa.func.translate(column, UPPER, LOWER), needle) > 0
        return sa.func.instr(sa.func.lower(column), needle) > 0
    if op == r.Op.eq:
        return column == operand
    if op == r.Op.in_:
        return column.in_(list(operand))
    return _compare(column, op, operand)


def two_valued(condition: Bool) -> Bool:
    """``condition``, with NULL (unknown) read as false."""
    return sa.func.coalesce(condition, sa.false())


class Compiler:
    """Builds the SQL of rules for one database dialect and one moment."""

    def __init__(self, dialect: str, clock: Clock) -> None:
        self.dialect, self.clock = dialect, clock
        self.postgres = dialect == "postgresql"
        self.joins: list[tuple[Any, Bool]] = []
        self.traits: Any = None
        self.exact: set[int] = set()
        self.kept: list[Bool] = []

    def members(self, rule: r.Rule) -> sa.Select[Any]:
        """``SELECT profile.id`` of the active profiles matching ``rule``."""
        condition = self.condition(rule)
        source: Any = PROFILE
        for table, on in self.joins:
            source = source.outerjoin(table, on)
        return sa.select(PROFILE.c.id).select_from(source).where(PROFILE.c.merged_into.is_(None), condition)

    def count(self, rule: r.Rule) -> sa.Select[Any]:
        """``SELECT count(*)`` of the members."""
        return sa.select(sa.func.count()).select_from(self.members(rule).subquery())

    def condition(self, rule: r.Rule) -> Bool:
        """The two-valued SQL boolean of ``rule`` over the profile row and the joins it adds."""
        if isinstance(rule, r.Group):
            parts = [self.condition(child) for child in rule.children]
            if rule.kind == "all":
                return sa.and_(sa.true(), *parts)
            return sa.or_(sa.false(), *parts)
        if isinstance(rule, r.Not):
            return ~self.condition(rule.child)
        if isinstance(rule, r.Member):
            return self.condition(rule.rule)
        atom = self._atom(rule)
        # Left bare when it cannot be NULL, so PostgreSQL can turn an IN into a semi-join.
        return atom if id(atom) in self.exact else two_valued(atom)

    def _exact(self, condition: Bool) -> Bool:
        """Mark ``condition`` as never NULL (``profile.id IN (...)`` of non-null ids, containment)."""
        self.exact.add(id(condition))
        self.kept.append(condition)  # ids stay unique while the compiler lives
        return condition

    def _semi_join(self, ids: sa.Select[Any]) -> Bool:
        return self._exact(PROFILE.c.id.in_(ids))

    def _atom(self, rule: r.Rule) -> Bool:
        if isinstance(rule, r.Trait):
            json = Json(self.dialect, PROFILE.c.traits, rule.key)
            condition = json_test(json, rule.test, self.clock)
            exact = json.prefix == "jsonb" and rule.test.op in (r.Op.eq, r.Op.in_)  # containment
            return self._exact(condition) if exact else condition
        if isinstance(rule, r.Computed):
            return self._computed(rule)
        if isinstance(rule, r.Behaviour):
            return self._behaviour(rule)
        if isinstance(rule, r.Loyalty):
            return self._loyalty(rule)
        if isinstance(rule, r.Consent):
            granted = sa.select(CONSENT.c.profile_id).where(
                CONSENT.c.channel == rule.channel,
                CONSENT.c.purpose == rule.purpose,
                CONSENT.c.granted.is_(True),
            )
            return self._semi_join(granted)
        assert isinstance(rule, r.PluginCondition)
        return rule.type.to_sql(rule.params, PROFILE)

    def _computed(self, rule: r.Computed) -> Bool:
        found = rule.field
        missing = 0 if found.zero_when_missing else None
        if found.table == "computed" and not typed_matches(rule.test, found.kind, missing, self.clock):
            # Profiles without computed traits cannot pass: a semi-join, which can use an index.
            column = TRAITS.c[found.key]
            passing = typed_test(column, found.kind, rule.test, self.clock, self.postgres)
            return self._semi_join(sa.select(TRAITS.c.profile_id).where(passing))
        return typed_test(self._field(found), found.kind, rule.test, self.clock, self.postgres)

    def _field(self, found: r.ComputedField) -> Any:
        if found.table == "profile":
            return PROFILE.c[found.key]
        if self.traits is None:
            self.traits = TRAITS.alias("computed")
            self.joins.append((self.traits, self.traits.c.profile_id == PROFILE.c.id))
        column = self.traits.c[found.key]
        return sa.func.coalesce(column, 0) if found.zero_when_missing else column

    def _behaviour(self, rule: r.Behaviour) -> Bool:
        # Only track events have a name: no filter on the type, so the (name, time) index answers.
        where = [EVENT.c.event == rule.event, EVENT.c.profile_id.is_not(None)]
        low, high = window_bounds(rule.window, self.clock)
        where += [EVENT.c.timestamp >= low] if low else []
        where += [EVENT.c.timestamp < high] if high else []
        for item in rule.where:
            where.append(
                two_valued(json_test(Json(self.dialect, EVENT.c.properties, item.key), item.test, self.clock))
            )
        if rule.measure == "count":
            measure: Any = sa.func.count()
        else:
            assert rule.property is not None
            value = Json(self.dialect, EVENT.c.properties, rule.property).number()
            measure = sa.func.sum(value) if rule.measure == "sum" else sa.func.avg(value)
        if rule.measure == "avg" or not measure_matches(0.0, rule.test):
            # No events cannot pass: the members are among the profiles that have some, a semi-join.
            if rule.measure == "count" and rule.test in (r.Test(r.Op.gte, 1.0), r.Test(r.Op.gt, 0.0)):
                return self._semi_join(sa.select(EVENT.c.profile_id).where(*where))  # performed at all
            having = measure_test(measure, rule.test)
            return self._semi_join(
                sa.select(EVENT.c.profile_id).where(*where).group_by(EVENT.c.profile_id).having(having)
            )
        # No events pass too (a count of 0, a sum of 0): join the per-profile measure, 0 when absent.
        events = (
            sa.select(EVENT.c.profile_id, measure.label("measure"))
            .where(*where)
            .group_by(EVENT.c.profile_id)
            .subquery(f"events_{len(self.joins)}")
        )
        self.joins.append((events, events.c.profile_id == PROFILE.c.id))
        return measure_test(sa.func.coalesce(events.c.measure, 0), rule.test)

    def _loyalty(self, rule: r.Loyalty) -> Bool:
        found = rule.field
        missing = 0 if found.zero_when_missing else None
        if not typed_matches(rule.test, found.kind, missing, self.clock):
            # Non-members cannot pass: a semi-join over the program's members.
            members = loyalty_values(rule.program_id, found.key).subquery()
            passing = typed_test(members.c.value, found.kind, rule.test, self.clock, self.postgres)
            return self._semi_join(sa.select(members.c.profile_id).where(passing))
        values = loyalty_values(rule.program_id, found.key).subquery(f"loyalty_{len(self.joins)}")
        self.joins.append((values, values.c.profile_id == PROFILE.c.id))
        value = sa.func.coalesce(values.c.value, 0) if found.zero_when_missing else values.c.value
        return typed_test(value, found.kind, rule.test, self.clock, self.postgres)


def loyalty_values(program_id: int, key: str) -> sa.Select[Any]:
    """``SELECT profile_id, value``: one loyalty field of every member of a program.

    Mirrors :mod:`core.loyalty.standing`: the tier is the member's tier of this program; the next
    tier is the lowest one above it by (threshold, id), the lowest of all without a tier; badges
    count the member's completed challenges of the program.
    """
    member = MEMBER.alias()
    of_program = member.c.program_id == program_id
    if key == "badges":
        won = (
            sa.select(PROGRESS.c.profile_id, sa.func.count().label("badges"))
            .select_from(PROGRESS.join(CHALLENGE, CHALLENGE.c.id == PROGRESS.c.challenge_id))
            .where(CHALLENGE.c.program_id == program_id, PROGRESS.c.completed_at.is_not(None))
            .group_by(PROGRESS.c.profile_id)
            .subquery()
        )
        source = member.outerjoin(won, won.c.profile_id == member.c.profile_id)
        badges = sa.func.coalesce(won.c.badges, 0).label("value")
        return sa.select(member.c.profile_id, badges).select_from(source).where(of_program)
    if key not in ("tier", "to_next_tier"):
        return sa.select(member.c.profile_id, member.c[key].label("value")).where(of_program)
    tier = TIER.alias()
    source = member.outerjoin(tier, sa.and_(tier.c.id == member.c.tier_id, tier.c.program_id == program_id))
    if key == "tier":
        return (
            sa.select(member.c.profile_id, tier.c.name.label("value")).select_from(source).where(of_program)
        )
    upper = TIER.alias()
    above = sa.or_(
        tier.c.id.is_(None),
        upper.c.threshold > tier.c.threshold,
        sa.and_(upper.c.threshold == tier.c.threshold, upper.c.id > tier.c.id),
    )
    threshold = sa.select(sa.func.min(upper.c.threshold)).where(upper.c.program_id == program_id, above)
    ladder = (
        sa.select(member.c.profile_id, member.c.qualifying, threshold.scalar_subquery().label("threshold"))
        .select_from(source)
        .where(of_program)
        .subquery()
    )
    needed = ladder.c.threshold - ladder.c.qualifying
    still = sa.case((ladder.c.threshold.is_(None), sa.null()), (needed > 0, needed), else_=sa.literal(0.0))
    return sa.select(ladder.c.profile_id, still.label("value"))


def measure_test(value: Any, test: r.Test) -> Bool:
    """A count, sum or average tested against numbers."""
    if test.op == r.Op.ne:
        return value != test.value
    if test.op == r.Op.eq:
        return value == test.value
    return _compare(value, test.op, test.value)


def window_bounds(window: r.Window | None, clock: Clock) -> tuple[Any, Any]:
    """[from, before) of a behaviour window in UTC (None: open)."""
    if window is None:
        return None, None
    if window.last_days is not None:
        return clock.now - timedelta(days=window.last_days), None
    low = clock.start_of(window.since) if window.since else None
    high = clock.start_of(window.until + timedelta(days=1)) if window.until else None
    return low, high


WORK_MEM = "64MB"


def give_room(session: Session) -> None:
    """On PostgreSQL, tune this transaction for segment queries: aggregates in memory, one process.

    The default ``work_mem`` (4 MB) spills the per-profile aggregates of a large tenant to disk.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.connection().execute(sa.text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
        # Parallel workers each rebuild the per-profile aggregates they join to: measured slower.
        session.connection().execute(sa.text("SET LOCAL max_parallel_workers_per_gather = 0"))


def members_query(rule: r.Rule, dialect: str, clock: Clock) -> sa.Select[Any]:
    """The SQL selecting the ids of the active profiles matching ``rule``."""
    return Compiler(dialect, clock).members(rule)


def count_query(rule: r.Rule, dialect: str, clock: Clock) -> sa.Select[Any]:
    """The SQL counting the active profiles matching ``rule``."""
    return Compiler(dialect, clock).count(rule)
