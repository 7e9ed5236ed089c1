"""Properties of the points ledger, over random streams of purchases, refunds, redemptions,
adjustments and expiry runs: every balance equals the sum of its ledger and is never negative,
and applying the same event stream again changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from core.loyalty.engine import APPLIED
from core.loyalty.expiry import expire_due
from core.loyalty.ledger import LEDGER, MEMBER, InsufficientPoints, Posting, ledger_sums, post
from core.loyalty.models import EntryKind, ExpiryPolicy, LoyaltyMember, RuleKind
from core.loyalty.programs import list_rules
from core.loyalty.state import EventRow
from tests.loyalty.club import Club
from tests.loyalty.stream import apply, rule, setup_of

START = datetime(2026, 1, 5, tzinfo=UTC)
PEOPLE = ["p1", "p2"]

purchase = st.tuples(st.just("buy"), st.sampled_from(PEOPLE), st.integers(1, 500), st.integers(0, 5))
refund = st.tuples(st.just("refund"), st.sampled_from(PEOPLE), st.one_of(st.none(), st.integers(1, 500)),
                   st.integers(0, 5))  # fmt: skip
redeem = st.tuples(st.just("redeem"), st.sampled_from(PEOPLE), st.integers(1, 800), st.just(0))
adjustment = st.tuples(st.just("adjust"), st.sampled_from(PEOPLE), st.integers(-300, 300), st.just(0))
expiry = st.tuples(st.just("expire"), st.just(""), st.integers(1, 400), st.just(0))
operations = st.lists(st.one_of(purchase, refund, redeem, adjustment, expiry), min_size=1, max_size=25)


def _reset(club: Club) -> None:
    connection = club.session.connection()
    for table in (LEDGER, MEMBER, APPLIED):
        connection.execute(table.delete())
    club.session.commit()


def _check(club: Club) -> None:
    club.session.expire_all()
    for member in club.session.exec(select(LoyaltyMember)):
        sums = ledger_sums(club.session, club.program_id, member.profile_id)
        assert member.balance == sums["balance"] >= 0
        assert (member.earned, member.redeemed, member.expired) == (
            sums["earned"],
            sums["redeemed"],
            sums["expired"],
        )
        assert member.earned - member.redeemed - member.expired == member.balance


def _ledger(club: Club) -> list[tuple[Any, ...]]:
    query = LEDGER.select().order_by(LEDGER.c.key)
    return [(r.key, r.profile_id, r.points, r.kind) for r in club.session.connection().execute(query)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=operations)
def test_balances_are_the_sum_of_the_ledger_and_never_negative(sqlite_club: Club, steps: list[tuple]) -> None:
    club = sqlite_club
    if not list_rules(club.session, club.program_id):  # the first example sets the program up
        club.program.expiry_policy, club.program.expiry_months = ExpiryPolicy.rolling, 3
        club.session.add(club.program)
        rule(club, "Per euro", kind=RuleKind.per_amount, points=1)
        rule(club, "Bonus", points=5)
    _reset(club)
    setup = setup_of(club)
    stream: list[EventRow] = []
    clock = START
    for number, (kind, person, amount, order) in enumerate(steps):
        clock += timedelta(days=7)
        if kind in ("buy", "refund"):
            name = "Order Completed" if kind == "buy" else "Order Refunded"
            properties: dict[str, Any] = {"order_id": f"{person}-{order}"}
            if amount is not None:
                properties["revenue"] = amount
            event = EventRow(number + 1, f"m{number}", name, person, properties, clock)
            stream.append(event)
            apply(club.session, setup, [event], now=clock)
        elif kind == "redeem":
            try:
                post(
                    club.session,
                    club.program,
                    [Posting(person, -amount, EntryKind.redeem, f"r{number}")],
                    now=clock,
                )
                club.session.commit()
            except InsufficientPoints:
                club.session.rollback()
        elif kind == "adjust":
            posting = Posting(
                person, amount or 1, EntryKind.adjust, f"a{number}", actor="agent", reason="test"
            )
            post(club.session, club.program, [posting], clamp=True, now=clock)
            club.session.commit()
        else:
            expire_due(club.session, club.program, clock + timedelta(days=amount))
            club.session.commit()
        _check(club)
    before = _ledger(club)
    apply(club.session, setup, stream, now=clock)  # the whole stream again, as one chunk
    assert _ledger(club) == before
    # Even if the record of applied events were lost, a purchase's entries' keys keep it from earning twice.
    club.session.connection().execute(APPLIED.delete())
    apply(club.session, setup, [event for event in stream if event.event == "Order Completed"], now=clock)
    _check(club)
    assert _ledger(club) == before
