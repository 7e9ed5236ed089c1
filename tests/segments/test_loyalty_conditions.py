"""Loyalty conditions in segment rules: a member's balance, totals, tier, distance to the next tier
and badges in one program, on a small hand-checked population, through both paths; and the rule
checks, with where and why.

The Club has the tiers Silver (100), Gold (500) and Platinum (2000). Ann is a Silver member with
two badges, Bob a member without a tier, Eve a Platinum member; Cyd is no member (her completed
challenge counts for nothing) and Dee, a Gold member, was merged into Ann: she never matches.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session

from core.db.engines import tenant_engine
from core.loyalty.models import ProgramStatus
from core.segments.clock import Clock
from core.segments.evaluate import evaluate, load_facts, needs_of
from core.segments.rules import LoyaltyProgramRef, RuleContext, RuleError, parse_rule
from core.segments.service import check_rule
from core.segments.sql import members_query
from tests.segments.population import store_people, store_programs

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
CLOCK = Clock.at("Europe/Paris", NOW)
CLUB, OLD = 1, 2

PROGRAMS = [{"id": CLUB, "key": "club", "name": "Club"},
            {"id": OLD, "key": "old", "name": "Old club", "status": ProgramStatus.archived}]  # fmt: skip
TIERS = [{"id": 1, "program_id": CLUB, "name": "Silver", "threshold": 100},
         {"id": 2, "program_id": CLUB, "name": "Gold", "threshold": 500},
         {"id": 3, "program_id": CLUB, "name": "Platinum", "threshold": 2000}]  # fmt: skip
CHALLENGES = [{"id": 1, "program_id": CLUB, "name": "First order", "badge": "Starter"},
              {"id": 2, "program_id": CLUB, "name": "Weekend", "badge": "Weekender"},
              {"id": 3, "program_id": OLD, "name": "Legacy", "badge": "Veteran"}]  # fmt: skip


def person(pid: str, loyalty: dict[int, dict[str, Any]], challenges: dict[int, Any] | None = None,
           merged: str | None = None) -> dict[str, Any]:  # fmt: skip
    return {"id": pid, "traits": {}, "computed": None, "consents": {}, "events": [], "merged": merged,
            "loyalty": loyalty, "challenges": challenges or {}}  # fmt: skip


PEOPLE = [
    person("ann", {CLUB: {"balance": 120, "earned": 200, "redeemed": 60, "expired": 20, "qualifying": 180, "tier_id": 1},
                   OLD: {"balance": 5, "earned": 5}},
           {1: NOW - timedelta(days=3), 2: NOW - timedelta(days=9), 3: NOW}),
    person("bob", {CLUB: {"qualifying": 40}}, {1: None}),
    person("cyd", {}, {1: NOW}),
    person("eve", {CLUB: {"balance": 3000, "earned": 3000, "qualifying": 2500, "tier_id": 3}}),
    person("dee", {CLUB: {"balance": 900, "qualifying": 700, "tier_id": 2}}, merged="ann"),
]  # fmt: skip
EVERYONE = {"ann", "bob", "cyd", "eve"}


def loyalty(field: str, op: str, value: Any = None, program: int = CLUB) -> dict[str, Any]:
    return {"type": "loyalty", "program": program, "field": field, "op": op,
            **({} if value is None else {"value": value})}  # fmt: skip


CASES: list[tuple[str, dict[str, Any], set[str]]] = [
    ("balance at least", loyalty("balance", ">=", 100), {"ann", "eve"}),
    ("a non-member's balance is 0", loyalty("balance", "=", 0), {"bob", "cyd"}),
    ("balance between", loyalty("balance", "between", [1, 500]), {"ann"}),
    ("earned", loyalty("earned", ">", 100), {"ann", "eve"}),
    ("redeemed", loyalty("redeemed", "in", [60, 70]), {"ann"}),
    ("expired", loyalty("expired", "!=", 0), {"ann"}),
    ("qualifying", loyalty("qualifying", "<", 100), {"bob", "cyd"}),
    ("every balance is set", loyalty("balance", "is set"), EVERYONE),
    ("tier", loyalty("tier", "=", "Silver"), {"ann"}),
    ("tiers in", loyalty("tier", "in", ["Silver", "Platinum"]), {"ann", "eve"}),
    ("tier contains, ignoring case", loyalty("tier", "contains", "PLAT"), {"eve"}),
    ("not in a tier holds for members without one and non-members", loyalty("tier", "!=", "Silver"),
     {"bob", "cyd", "eve"}),
    ("no tier", loyalty("tier", "is not set"), {"bob", "cyd"}),
    ("points to the next tier: Silver to Gold is 320, no tier to Silver 60",
     loyalty("to_next_tier", "between", [60, 320]), {"ann", "bob"}),
    ("close to the next tier", loyalty("to_next_tier", "<=", 100), {"bob"}),
    ("the top tier and non-members have no next tier", loyalty("to_next_tier", "is not set"), {"cyd", "eve"}),
    ("badges of completed challenges of the program", loyalty("badges", "=", 2), {"ann"}),
    ("no badge: in progress, non-member, or none", loyalty("badges", "=", 0), {"bob", "cyd", "eve"}),
    ("an archived program still answers", loyalty("balance", "=", 5, program=OLD), {"ann"}),
    ("its badges too", loyalty("badges", ">=", 1, program=OLD), {"ann"}),
    ("a program nobody is a member of", loyalty("balance", "=", 0, program=9), EVERYONE),
    ("with other conditions", {"all": [loyalty("balance", ">", 0), {"not": loyalty("tier", "=", "Platinum")}]},
     {"ann"}),
]  # fmt: skip


def test_loyalty_conditions_pick_the_hand_checked_profiles_on_both_paths(installation) -> None:
    database = installation.tenant("acme").tenant.database
    with Session(tenant_engine(database)) as session:
        store_programs(session, PROGRAMS, TIERS, CHALLENGES)
        store_people(session, PEOPLE, NOW)
        parsed = {name: parse_rule(rule) for name, rule, _ in CASES}
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


def test_member_rows_are_read_only_for_rules_with_loyalty_conditions() -> None:
    plain = parse_rule({"type": "trait", "key": "country", "op": "=", "value": "FR"})
    both = [
        plain,
        parse_rule({"not": loyalty("tier", "=", "Gold")}),
        parse_rule(loyalty("balance", ">", 0, OLD)),
    ]
    assert needs_of([plain], CLOCK).loyalty == frozenset()
    assert needs_of(both, CLOCK).loyalty == {CLUB, OLD}


# --- checks ---------------------------------------------------------------------------------------
CONTEXT = RuleContext(
    loyalty_program={CLUB: LoyaltyProgramRef(CLUB, "club", "Club", tiers=("Silver", "Gold", "Platinum"))}.get
)
FRENCH = {"type": "trait", "key": "country", "op": "=", "value": "FR"}


@pytest.mark.parametrize(
    ("rule", "path", "message"),
    [
        (loyalty("balance", ">=", 1, program=9), "program", "there is no loyalty program 9"),
        ({**loyalty("balance", ">=", 1), "program": "club"}, "program", "program takes the id of a loyalty program"),
        (loyalty("points", ">=", 1), "field", "unknown loyalty field 'points'; use one of: balance, earned"),
        (loyalty("tier", "=", "Diamond"), "value", "'Diamond' is not one of Silver, Gold, Platinum"),
        (loyalty("tier", "in", ["Gold", "Bronze"]), "value", "in the list: 'Bronze' is not one of"),
        (loyalty("tier", ">", "Gold"), "op", "> does not apply to a text field"),
        (loyalty("balance", "contains", "1"), "op", "contains does not apply to a number field"),
        (loyalty("to_next_tier", "<=", "soon"), "value", "<= takes numbers"),
        ({**loyalty("badges", ">=", 1), "key": "badges"}, "", "unknown field(s) key"),
        ({"all": [FRENCH, {"not": loyalty("tier", "=", "Diamond")}]}, "all[1].not.value", "'Diamond' is not one of"),
    ],
)  # fmt: skip
def test_an_invalid_loyalty_condition_is_refused_with_where_and_why(rule, path, message) -> None:
    with pytest.raises(RuleError) as refused:
        parse_rule(rule, CONTEXT)
    assert any(p.path == path and message in p.message for p in refused.value.problems), (
        refused.value.problems
    )


def test_every_problem_of_a_loyalty_condition_is_reported_at_once() -> None:
    with pytest.raises(RuleError) as refused:
        parse_rule({"any": [loyalty("level", "=", "x", program=9)]}, CONTEXT)
    assert [(p.path, p.message.split(";")[0]) for p in refused.value.problems] == [
        ("any[0].program", "there is no loyalty program 9"),
        ("any[0].field", "unknown loyalty field 'level'"),
    ]


def test_without_a_program_lookup_ids_and_tier_names_are_taken_as_stored() -> None:
    rule = parse_rule(loyalty("tier", "=", "Diamond", program=9))
    assert (rule.program_id, rule.field.key, rule.test.value) == (9, "tier", "Diamond")  # type: ignore[union-attr]


def test_saving_checks_loyalty_conditions_against_the_tenants_programs_and_tiers(installation) -> None:
    database = installation.tenant("acme").tenant.database
    with Session(tenant_engine(database)) as session:
        store_programs(session, PROGRAMS, TIERS, CHALLENGES)
        check_rule(session, {"all": [loyalty("tier", "in", ["Gold"]), loyalty("balance", ">", 0, OLD)]}, {})
        with pytest.raises(RuleError) as refused:
            check_rule(session, {"all": [loyalty("tier", "=", "Diamond"), loyalty("balance", ">", 0, 9)]}, {})
        assert [(p.path, p.message) for p in refused.value.problems] == [
            ("all[0].value", "'Diamond' is not one of Silver, Gold, Platinum"),
            ("all[1].program", "there is no loyalty program 9"),
        ]
