"""Every operator and condition type on a small, hand-checked population, through both paths.

Ann, Bob and Cyd are written straight into the tenant database (Dee was merged into Ann, so she is
never a member). Each case names the rule and who must match; the SQL query and the in-memory
evaluation must both give exactly that.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session

from core.db.engines import tenant_engine
from core.segments.clock import Clock
from core.segments.evaluate import evaluate, load_facts, needs_of
from core.segments.rules import RuleContext, parse_rule
from core.segments.sql import members_query
from tests.segments.population import store_people

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
CLOCK = Clock.at("Europe/Paris", NOW)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def order(days: float, revenue: float, currency: str = "EUR") -> dict[str, Any]:
    return {
        "event": "Order Completed",
        "at": ago(days),
        "properties": {"revenue": revenue, "currency": currency},
    }


PEOPLE = [
    {"id": "ann", "traits": {"country": "FR", "age": 34, "vip": True, "birthday": "1990-03-20", "tags": ["Gold", "news"],
                             "note": "Loves Paris", "signup": "2026-03-10", "renewal": "2026-03-20T09:00:00Z"},
     "computed": {"orders": 3, "revenue": 250.0, "rfm_segment": "champions", "churn_risk": 0.1, "last_order_at": ago(2)},
     "consents": {"email": True},
     "events": [order(1, 100), order(10, 100), order(40, 50),
                {"event": "Email Opened", "at": ago(5), "properties": {}}]},
    {"id": "bob", "traits": {"country": "DE", "age": 17, "vip": False, "birthday": "1985-12-31", "tags": [],
                             "signup": "2025-01-01", "note": 5},
     "computed": {"orders": 1, "revenue": 20.0, "rfm_segment": "at_risk", "churn_risk": 0.8, "last_order_at": ago(100)},
     "consents": {"email": False, "whatsapp": True},
     "events": [order(100, 20, "USD")]},
    {"id": "cyd", "traits": {"country": "fr", "age": "34", "birthday": "not a date"}, "computed": None, "consents": {},
     "events": [{"event": "Page Viewed", "at": ago(0.1), "properties": {}}] * 2},
    {"id": "dee", "traits": {"country": "FR"}, "computed": None, "consents": {"email": True}, "events": [],
     "merged": "ann"},
]  # fmt: skip
EVERYONE = {"ann", "bob", "cyd"}


def trait(key: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"type": "trait", "key": key, "op": op, **({} if value is None else {"value": value})}


def computed(key: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"type": "computed", "key": key, "op": op, **({} if value is None else {"value": value})}


def orders(**more: Any) -> dict[str, Any]:
    return {"type": "event", "event": "Order Completed", **more}


CASES: list[tuple[str, dict[str, Any], set[str]]] = [
    # traits: the operand's type decides the comparison
    ("text equals", trait("country", "=", "FR"), {"ann"}),
    ("not equals includes the unset", trait("country", "!=", "FR"), {"bob", "cyd"}),
    ("a number matches numbers only", trait("age", "=", 34), {"ann"}),
    ("true", trait("vip", "=", True), {"ann"}),
    ("false", trait("vip", "=", False), {"bob"}),
    ("in", trait("country", "in", ["FR", "DE"]), {"ann", "bob"}),
    ("not in", trait("country", "not in", ["FR"]), {"bob", "cyd"}),
    ("less than", trait("age", "<", 18), {"bob"}),
    ("greater than", trait("age", ">", 18), {"ann"}),
    ("at most", trait("age", "<=", 34), {"ann", "bob"}),
    ("at least", trait("age", ">=", 35), set()),
    ("between numbers", trait("age", "between", [17, 34]), {"ann", "bob"}),
    ("before a date", trait("signup", "<", "2026-01-01"), {"bob"}),
    ("between dates", trait("signup", "between", ["2026-03-01", "2026-03-31"]), {"ann"}),
    ("a date-time text equals itself", trait("renewal", "=", "2026-03-20T09:00:00Z"), {"ann"}),
    ("a date-time compares by its date", trait("renewal", ">=", "2026-03-20"), {"ann"}),
    ("contains ignores case", trait("note", "contains", "paris"), {"ann"}),
    ("a list contains an element", trait("tags", "contains", "gold"), {"ann"}),
    ("contains needs text or a list", trait("note", "contains", "5"), set()),
    ("is set", trait("tags", "is set"), {"ann", "bob"}),
    ("is not set", trait("tags", "is not set"), {"cyd"}),
    ("within the last 7 days", trait("signup", "within last days", 7), {"ann"}),
    ("more than 30 days ago", trait("signup", "more than days ago", 30), {"bob"}),
    ("within the next 10 days", trait("renewal", "within next days", 10), {"ann"}),
    ("birthday within a week", trait("birthday", "birthday within days", 7), {"ann"}),
    ("birthday today", trait("birthday", "birthday within days", 0), set()),
    ("birthday within a year: every valid date", trait("birthday", "birthday within days", 400), {"ann", "bob"}),
    # computed traits: typed; orders and revenue count 0 without purchases
    ("orders at least 1", computed("orders", ">=", 1), {"ann", "bob"}),
    ("no orders", computed("orders", "=", 0), {"cyd"}),
    ("revenue between", computed("revenue", "between", [0, 50]), {"bob", "cyd"}),
    ("RFM group", computed("rfm_segment", "=", "champions"), {"ann"}),
    ("RFM groups in", computed("rfm_segment", "in", ["at_risk", "hibernating"]), {"bob"}),
    ("RFM group contains", computed("rfm_segment", "contains", "CHAMP"), {"ann"}),
    ("no RFM group", computed("rfm_segment", "is not set"), {"cyd"}),
    ("churn risk above", computed("churn_risk", ">", 0.5), {"bob"}),
    ("churn risk not 0.1", computed("churn_risk", "!=", 0.1), {"bob", "cyd"}),
    ("ordered within a week", computed("last_order_at", "within last days", 7), {"ann"}),
    ("last order long ago", computed("last_order_at", "more than days ago", 30), {"bob"}),
    ("last order before a date", computed("last_order_at", "<", "2026-01-01"), {"bob"}),
    ("last order between dates", computed("last_order_at", "between", ["2026-03-13", "2026-03-13"]), {"ann"}),
    ("first seen today", computed("first_seen", "within last days", 0), EVERYONE),
    # behaviour
    ("performed", orders(), {"ann", "bob"}),
    ("at least twice in 30 days", orders(op=">=", value=2, window={"last_days": 30}), {"ann"}),
    ("exactly once ever", orders(op="=", value=1), {"bob"}),
    ("at most once in 30 days", orders(op="<=", value=1, window={"last_days": 30}), {"bob", "cyd"}),
    ("did not perform in 30 days", orders(performed=False, window={"last_days": 30}), {"bob", "cyd"}),
    ("sum of revenue", orders(measure="sum", property="revenue", op=">=", value=200), {"ann"}),
    ("a sum of nothing is 0", orders(measure="sum", property="revenue", op="<", value=10, window={"last_days": 30}),
     {"bob", "cyd"}),
    ("average revenue", orders(measure="avg", property="revenue", op=">", value=60), {"ann"}),
    ("an average of nothing matches nothing", orders(measure="avg", property="revenue", op=">=", value=0,
                                                     window={"last_days": 30}), {"ann"}),
    ("with a property filter", orders(where=[{"key": "currency", "op": "=", "value": "USD"}]), {"bob"}),
    ("between dates", orders(window={"since": "2026-03-01", "until": "2026-03-14"}), {"ann"}),
    ("until a date", orders(window={"until": "2026-01-01"}), {"bob"}),
    ("count between", {"type": "event", "event": "Page Viewed", "op": "between", "value": [2, 3]}, {"cyd"}),
    # consent
    ("consent granted", {"type": "consent", "channel": "email"}, {"ann"}),
    ("consent for another channel", {"type": "consent", "channel": "whatsapp"}, {"bob"}),
    ("consent for another purpose", {"type": "consent", "channel": "email", "purpose": "service"}, set()),
    # groups and other segments
    ("empty all", {"all": []}, EVERYONE),
    ("empty any", {"any": []}, set()),
    ("not", {"not": trait("country", "=", "FR")}, {"bob", "cyd"}),
    ("any", {"any": [trait("country", "=", "DE"), trait("vip", "=", True)]}, {"ann", "bob"}),
    ("all", {"all": [trait("country", "in", ["FR", "fr"]), {"not": orders()}]}, {"cyd"}),
    ("member of another segment", {"all": [{"type": "segment", "segment": 1}, computed("orders", ">", 1)]}, {"ann"}),
]  # fmt: skip
FRENCH = trait("country", "=", "FR")


def test_every_operator_and_condition_type_picks_the_hand_checked_profiles(installation) -> None:
    database = installation.tenant("acme").tenant.database
    with Session(tenant_engine(database)) as session:
        store_people(session, PEOPLE, NOW)
        context = RuleContext(segment_rule={1: FRENCH}.get)
        parsed = {name: parse_rule(rule, context) for name, rule, _ in CASES}
        facts = load_facts(session, [p["id"] for p in PEOPLE], needs_of(parsed.values(), CLOCK))
        dialect = session.get_bind().dialect.name
        wrong = []
        for name, _, expected in CASES:
            in_sql = set(session.connection().execute(members_query(parsed[name], dialect, CLOCK)).scalars())
            in_memory = {pid for pid, fact in facts.items() if evaluate(parsed[name], fact, CLOCK)}
            if in_sql != expected or in_memory != expected:
                wrong.append(
                    f"{name}: expected {sorted(expected)}, SQL {sorted(in_sql)}, memory {sorted(in_memory)}"
                )
        assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("name", [name for name, _, _ in CASES])
def test_each_case_is_a_valid_rule(name: str) -> None:
    rule = next(rule for case, rule, _ in CASES if case == name)
    parse_rule(rule, RuleContext(segment_rule={1: FRENCH}.get))
