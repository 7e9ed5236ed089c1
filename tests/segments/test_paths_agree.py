"""The SQL of a rule and its in-memory evaluation pick the same profiles, for any profiles and rules.

Random small populations (traits of every JSON type, computed traits, consents, events with
properties at times around "now") are written to the tenant database; random rule trees over the
same small vocabularies are compiled to SQL and counted, and evaluated per profile from
:func:`core.segments.evaluate.load_facts`. Both must give exactly the same members.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from core.db.engines import tenant_engine
from core.segments import rules as r
from core.segments.clock import Clock
from core.segments.evaluate import evaluate, load_facts, needs_of
from core.segments.sql import members_query
from tests.segments.population import store_people

NOW = datetime(2026, 3, 15, 22, 30, tzinfo=UTC)  # late evening: Paris is already on the next day
CLOCK = Clock.at("Europe/Paris", NOW)
KEYS = ["country", "age", "vip", "birthday", "tags", "note"]
WORDS = ["FR", "fr", "Paris", "paris", "vip", "Vip", "", "2026-03-16", "2026-03-01T10:00:00Z"]
DATES = [(CLOCK.today + timedelta(days=d)).isoformat() for d in (-400, -40, -8, -7, -1, 0, 1, 6, 7, 30)]
DATES += ["1990-03-16", "1985-12-31", "2000-02-29", "2000-01-01"]
NUMBERS = [0, 1, 2, 2.5, 3, 10, -1]
EVENTS = ["Viewed", "Bought"]
CHANNELS = ["email", "whatsapp"]

json_values = st.one_of(
    st.none(), st.booleans(), st.sampled_from(NUMBERS), st.sampled_from(WORDS + DATES),
    st.lists(st.sampled_from(WORDS), max_size=3),
)  # fmt: skip


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
        people.append({"id": f"p{n}", "traits": traits, "computed": computed, "events": events,
                       "consents": consents, "merged": "p0" if n > 0 and draw(st.integers(0, 9)) == 0 else None, "seen": seen})  # fmt: skip
    return people


def _test(draw: st.DrawFn, kind: r.Kind) -> dict[str, Any]:
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
    family = {r.Op.ne: r.Op.eq, r.Op.not_in: r.Op.in_, r.Op.gt: r.Op.lt, r.Op.lte: r.Op.lt, r.Op.gte: r.Op.lt,
              **dict.fromkeys(r.RELATIVE, r.Op.within_last_days)}.get(op, op)  # fmt: skip
    test: dict[str, Any] = {"op": op.value}
    if op not in (r.Op.is_set, r.Op.is_not_set):
        test["value"] = draw(values[family])
    return test


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    """One random condition of a built-in type."""
    kind = draw(st.sampled_from(["trait", "computed", "event", "consent"]))
    if kind == "trait":
        return {"type": "trait", "key": draw(st.sampled_from(KEYS)), **_test(draw, r.Kind.json)}
    if kind == "computed":
        key = draw(st.sampled_from(["orders", "revenue", "rfm_segment", "churn_risk", "last_order_at",
                                    "first_seen"]))  # fmt: skip
        return {"type": "computed", "key": key, **_test(draw, r.COMPUTED_FIELDS[key].kind)}
    if kind == "consent":
        return {"type": "consent", "channel": draw(st.sampled_from(CHANNELS))}
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


rules_json = st.recursive(
    conditions(),
    lambda children: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(children, max_size=3)),
        st.builds(lambda xs: {"any": xs}, st.lists(children, max_size=3)),
        st.builds(lambda x: {"not": x}, children),
    ),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(people=profiles(), rules=st.lists(rules_json, min_size=1, max_size=4))
def test_sql_and_memory_pick_the_same_profiles(installation, people, rules) -> None:
    database = (
        installation.tenant("acme").tenant.database if not hasattr(installation, "_db") else installation._db
    )
    installation._db = database
    with Session(tenant_engine(database)) as session:
        store_people(session, people, NOW)
        parsed = [r.parse_rule(rule) for rule in rules]
        facts = load_facts(session, [p["id"] for p in people], needs_of(parsed, CLOCK))
        dialect = session.get_bind().dialect.name
        for rule, data in zip(parsed, rules, strict=True):
            in_sql = set(session.connection().execute(members_query(rule, dialect, CLOCK)).scalars())
            in_memory = {pid for pid, fact in facts.items() if evaluate(rule, fact, CLOCK)}
            assert in_sql == in_memory, (data, people)
        session.rollback()
