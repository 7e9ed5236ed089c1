"""The SQL of a rule and its in-memory evaluation pick the same profiles, for any profiles and rules.

Random small populations (traits of every JSON type, computed traits, consents, events with
properties at times around "now", loyalty members with tiers and completed challenges) are written
to the tenant database; random rule trees over the same small vocabularies are compiled to SQL and
counted, and evaluated per profile from :func:`core.segments.evaluate.load_facts`. Both must give
exactly the same members.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from core.db.engines import tenant_engine
from core.loyalty.models import ProgramStatus
from core.segments import rules as r
from core.segments.clock import Clock
from core.segments.evaluate import evaluate, load_facts, needs_of
from core.segments.sql import members_query
from tests.segments.population import store_people, store_programs

NOW = datetime(2026, 3, 15, 22, 30, tzinfo=UTC)  # late evening: Paris is already on the next day
CLOCK = Clock.at("Europe/Paris", NOW)
KEYS = ["country", "age", "vip", "birthday", "tags", "note"]
WORDS = ["FR", "fr", "Paris", "paris", "vip", "Vip", "", "2026-03-16", "2026-03-01T10:00:00Z"]
DATES = [(CLOCK.today + timedelta(days=d)).isoformat() for d in (-400, -40, -8, -7, -1, 0, 1, 6, 7, 30)]
DATES += ["1990-03-16", "1985-12-31", "2000-02-29", "2000-01-01"]
NUMBERS = [0, 1, 2, 2.5, 3, 10, -1]
EVENTS = ["Viewed", "Bought"]
CHANNELS = ["email", "whatsapp"]
# Program 1 is active, 2 archived, 3 does not exist. Silver and Silver Plus share a threshold: the
# ladder orders them by id. Tier 5 is of program 2 and 999 of none, so a member of program 1 with
# either has no tier there.
PROGRAMS = [
    {"id": 1, "key": "club", "name": "Club"},
    {"id": 2, "key": "stars", "name": "Stars", "status": ProgramStatus.archived},
]
TIERS = [
    {"id": 1, "program_id": 1, "name": "Bronze", "threshold": 0},
    {"id": 2, "program_id": 1, "name": "Silver", "threshold": 100},
    {"id": 3, "program_id": 1, "name": "Silver Plus", "threshold": 100},
    {"id": 4, "program_id": 1, "name": "Gold", "threshold": 500},
    {"id": 5, "program_id": 2, "name": "VIP", "threshold": 12.5},
]
CHALLENGES = [
    {"id": 1, "program_id": 1, "name": "First", "badge": "Starter"},
    {"id": 2, "program_id": 1, "name": "Weekend", "badge": "Weekender"},
    {"id": 3, "program_id": 2, "name": "Star", "badge": "Star"},
]
TIER_NAMES = ["Bronze", "Silver", "Silver Plus", "Gold", "VIP", "gold"]
LOYALTY_NUMBERS = [0, 1, 2, 2.5, 10, 12.5, 97.5, 100, 150, 400, 0.5, -1]

json_values = st.one_of(
    st.none(), st.booleans(), st.sampled_from(NUMBERS), st.sampled_from(WORDS + DATES),
    st.lists(st.sampled_from(WORDS), max_size=3),
)  # fmt: skip


@st.composite
def member_values(draw: st.DrawFn) -> dict[str, Any]:
    """A loyalty member's values: points, qualifying value and tier (maybe of another program, or gone)."""
    return {"balance": draw(st.sampled_from([0, 1, 2, 10, 150])), "earned": draw(st.sampled_from([0, 3, 10])),
            "redeemed": draw(st.sampled_from([0, 1])), "expired": draw(st.sampled_from([0, 2])),
            "qualifying": draw(st.sampled_from([99.5, 0, 2.5, 100, 600])),
            "tier_id": draw(st.sampled_from([2, 3, None, 1, 4, 5, 999]))}  # fmt: skip


@st.composite
def completions(draw: st.DrawFn) -> dict[int, datetime | None]:
    """Challenges completed (when) or in progress (None); non-members' completions count for nothing."""
    return {
        c: draw(st.sampled_from([NOW - timedelta(days=c), None])) for c in (1, 2, 3) if draw(st.booleans())
    }


@st.composite
def members(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A few profiles with loyalty data only, members of program 1 more often than not."""
    people = []
    for n in range(draw(st.integers(1, 8))):
        programs = draw(st.sampled_from([(1,), (1, 2), (), (2,)]))
        people.append({"id": f"p{n}", "traits": {}, "computed": None, "events": [], "consents": {},
                       "merged": "p0" if n > 0 and draw(st.integers(0, 9)) == 0 else None,
                       "loyalty": {program: draw(member_values()) for program in programs},
                       "challenges": draw(completions())})  # fmt: skip
    return people


@st.composite
def profiles(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A few profiles, each with traits, maybe computed traits, consents and events."""
    people = []
    for n in range(draw(st.integers(1, 6))):
        traits = {k: v for k in KEYS if (v := draw(json_values)) is not None or draw(st.booleans())}
        computed = None
        if draw(st.booleans()):
            computed = {
                "orders": draw(st.integers(1, 5)), "revenue": draw(st.sampled_from([10.0, 99.5, 100.0, 250.0])),
                "rfm_segment": draw(st.sampled_from([None, "champions", "at_risk", "hibernating"])),
                "churn_risk": draw(st.sampled_from([None, 0.1, 0.5, 0.9])),
                "last_order_at": draw(st.sampled_from([None, NOW - timedelta(days=3), NOW - timedelta(days=40),
                                                       NOW - timedelta(hours=23)])),
            }  # fmt: skip
        events = [
            {"event": draw(st.sampled_from(EVENTS)),
             "at": NOW - timedelta(hours=draw(st.integers(-30, 24 * 45))),
             "properties": {"amount": draw(st.sampled_from([*NUMBERS, "12", None])),
                            "category": draw(st.sampled_from(["shoes", "Shoes", "bags"]))}}
            for _ in range(draw(st.integers(0, 5)))
        ]  # fmt: skip
        consents = {c: draw(st.booleans()) for c in CHANNELS if draw(st.booleans())}
        seen = NOW - timedelta(days=draw(st.sampled_from([0, 2, 10, 100])))
        loyalty = {program: draw(member_values()) for program in (1, 2) if draw(st.booleans())}
        challenges = draw(completions())
        people.append({"id": f"p{n}", "traits": traits, "computed": computed, "events": events,
                       "consents": consents, "merged": "p0" if n > 0 and draw(st.integers(0, 9)) == 0 else None, "seen": seen,
                       "loyalty": loyalty, "challenges": challenges})  # fmt: skip
    return people


def _test(draw: st.DrawFn, kind: r.Kind, loyalty: bool = False) -> dict[str, Any]:
    op = draw(st.sampled_from(r.KIND_OPS[kind]))
    values: dict[r.Op, Any] = {
        r.Op.eq: st.one_of(st.booleans(), st.sampled_from(NUMBERS + WORDS + DATES)),
        r.Op.between: st.one_of(st.lists(st.sampled_from(NUMBERS), min_size=2, max_size=2).map(sorted),
                                st.lists(st.sampled_from(DATES), min_size=2, max_size=2).map(sorted)),
        r.Op.in_: st.lists(st.sampled_from(NUMBERS + WORDS), min_size=1, max_size=3),
        r.Op.contains: st.sampled_from(["fr", "VIP", "ari", "p"]),
        r.Op.lt: st.one_of(st.sampled_from(NUMBERS), st.sampled_from(DATES)),
        r.Op.within_last_days: st.sampled_from([0, 1, 7, 30, 400]),
    }  # fmt: skip
    if kind == r.Kind.number:
        values[r.Op.eq] = st.sampled_from(NUMBERS + [10.0, 99.5, 0.5])
        values[r.Op.lt] = values[r.Op.eq]
        values[r.Op.in_] = st.lists(values[r.Op.eq], min_size=1, max_size=3)
        values[r.Op.between] = st.lists(values[r.Op.eq], min_size=2, max_size=2).map(sorted)
    if kind == r.Kind.instant:
        values[r.Op.lt] = st.sampled_from(DATES)
        values[r.Op.between] = st.lists(st.sampled_from(DATES), min_size=2, max_size=2).map(sorted)
    if kind == r.Kind.text:
        values[r.Op.eq] = st.sampled_from(["champions", "at_risk", "loyal_customers"])
        values[r.Op.in_] = st.lists(values[r.Op.eq], min_size=1, max_size=2)
    if loyalty and kind == r.Kind.number:
        values[r.Op.eq] = values[r.Op.lt] = st.sampled_from(LOYALTY_NUMBERS)
        values[r.Op.in_] = st.lists(values[r.Op.eq], min_size=1, max_size=3)
        values[r.Op.between] = st.lists(values[r.Op.eq], min_size=2, max_size=2).map(sorted)
    if loyalty and kind == r.Kind.text:
        values[r.Op.eq] = st.sampled_from(TIER_NAMES)
        values[r.Op.in_] = st.lists(values[r.Op.eq], min_size=1, max_size=2)
        values[r.Op.contains] = st.sampled_from(["silver", "GOLD", "plus", "i"])
    family = {r.Op.ne: r.Op.eq, r.Op.not_in: r.Op.in_, r.Op.gt: r.Op.lt, r.Op.lte: r.Op.lt, r.Op.gte: r.Op.lt,
              **dict.fromkeys(r.RELATIVE, r.Op.within_last_days)}.get(op, op)  # fmt: skip
    test: dict[str, Any] = {"op": op.value}
    if op not in (r.Op.is_set, r.Op.is_not_set):
        test["value"] = draw(values[family])
    return test


@st.composite
def loyalty_conditions(draw: st.DrawFn) -> dict[str, Any]:
    """One random loyalty condition (on a program that may not exist)."""
    field = r.LOYALTY_FIELDS[draw(st.sampled_from(list(r.LOYALTY_FIELDS)))]
    program = draw(st.sampled_from([1, 1, 2, 3]))
    return {
        "type": "loyalty",
        "program": program,
        "field": field.key,
        **_test(draw, field.kind, loyalty=True),
    }


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    """One random condition of a built-in type."""
    kind = draw(st.sampled_from(["trait", "computed", "event", "consent", "loyalty"]))
    if kind == "trait":
        return {"type": "trait", "key": draw(st.sampled_from(KEYS)), **_test(draw, r.Kind.json)}
    if kind == "computed":
        key = draw(st.sampled_from(["orders", "revenue", "rfm_segment", "churn_risk", "last_order_at",
                                    "first_seen"]))  # fmt: skip
        return {"type": "computed", "key": key, **_test(draw, r.COMPUTED_FIELDS[key].kind)}
    if kind == "consent":
        return {"type": "consent", "channel": draw(st.sampled_from(CHANNELS))}
    if kind == "loyalty":
        return draw(loyalty_conditions())
    condition: dict[str, Any] = {"type": "event", "event": draw(st.sampled_from(EVENTS))}
    if draw(st.booleans()):
        condition["where"] = [
            {"key": draw(st.sampled_from(["category", "amount"])), **_test(draw, r.Kind.json)}
        ]
    window = draw(st.sampled_from([None, {"last_days": 1}, {"last_days": 30}, {"since": DATES[2]},
                                   {"since": DATES[3], "until": DATES[5]}, {"until": DATES[4]}]))  # fmt: skip
    if window:
        condition["window"] = window
    if draw(st.integers(0, 4)) == 0:
        return {**condition, "performed": False}
    measure = draw(st.sampled_from(["count", "sum", "avg"]))
    condition["measure"] = measure
    if measure != "count":
        condition["property"] = "amount"
    op = draw(st.sampled_from(r.MEASURE_OPS))
    amount = st.sampled_from([0, 1, 2, 2.5, 3])
    value = draw(st.lists(amount, min_size=2, max_size=2).map(sorted)) if op == r.Op.between else draw(amount)
    return {**condition, "op": op.value, "value": value}


def trees(leaves: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Random rule trees (all, any, not) over conditions drawn from ``leaves``."""
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.builds(lambda xs: {"all": xs}, st.lists(children, max_size=3)),
            st.builds(lambda xs: {"any": xs}, st.lists(children, max_size=3)),
            st.builds(lambda x: {"not": x}, children),
        ),
        max_leaves=6,
    )


rules_json = trees(conditions())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(people=profiles(), rules=st.lists(rules_json, min_size=1, max_size=4))
def test_sql_and_memory_pick_the_same_profiles(installation, people, rules) -> None:
    _agree(installation, people, rules)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    people=members(),
    rules=st.lists(st.one_of(loyalty_conditions(), trees(loyalty_conditions())), min_size=1, max_size=8),
)
def test_sql_and_memory_agree_on_loyalty_standing(installation, people, rules) -> None:
    _agree(installation, people, rules)


def _agree(installation: Any, people: list[dict[str, Any]], rules: list[dict[str, Any]]) -> None:
    database = (
        installation.tenant("acme").tenant.database if not hasattr(installation, "_db") else installation._db
    )
    installation._db = database
    with Session(tenant_engine(database)) as session:
        store_programs(session, PROGRAMS, TIERS, CHALLENGES)
        store_people(session, people, NOW)
        parsed = [r.parse_rule(rule) for rule in rules]
        facts = load_facts(session, [p["id"] for p in people], needs_of(parsed, CLOCK))
        dialect = session.get_bind().dialect.name
        for rule, data in zip(parsed, rules, strict=True):
            in_sql = set(session.connection().execute(members_query(rule, dialect, CLOCK)).scalars())
            in_memory = {pid for pid, fact in facts.items() if evaluate(rule, fact, CLOCK)}
            assert in_sql == in_memory, (data, people)
        session.rollback()
