"""What happens to points after they are earned: reversal on refunds and cancellations, expiry
(oldest points first), tier periods (upgrade at once, downgrade only when a period ends), manual
adjustments, and merges of two members into one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from core.ingest.service import accept
from core.loyalty import events
from core.loyalty.expiry import expire_due, expires_at, roll_periods
from core.loyalty.ledger import InsufficientPoints, LoyaltyError, Posting, entries_of, ledger_sums, post
from core.loyalty.members import adjust
from core.loyalty.models import EntryKind, ExpiryPolicy, LoyaltyMember, RuleKind, TierBasis
from core.profiles.jobs import process_events
from tests.loyalty.club import Club
from tests.loyalty.stream import apply, row, rule, setup_of, track

MARCH = datetime(2026, 3, 10, 12, tzinfo=UTC)


def kinds(club: Club, profile_id: str) -> list[tuple[str, int]]:
    """The member's ledger as (kind, points), oldest first."""
    club.session.expire_all()
    return [(e.kind.value, e.points) for e in reversed(entries_of(club.session, club.program_id, profile_id))]


def test_a_refund_takes_back_what_its_order_earned(sqlite_club: Club) -> None:
    club = sqlite_club
    rule(club, "Per euro", kind=RuleKind.per_amount, points=1)
    rule(club, "Order bonus", points=10)
    setup = setup_of(club)
    apply(club.session, setup, [row("p1", "Order Completed", MARCH, order_id="A", revenue=100),
                                row("p1", "Order Completed", MARCH, order_id="B", revenue=50)])  # fmt: skip
    refund = row("p1", "Order Refunded", MARCH, order_id="A")
    apply(club.session, setup, [refund])
    apply(club.session, setup, [refund])  # the same refund again takes nothing more
    apply(club.session, setup, [row("p1", "Order Cancelled", MARCH, order_id="A")])  # nothing left of A
    assert club.balance("p1") == 60
    assert [points for kind, points in kinds(club, "p1") if kind == "reverse"] == [-100, -10]
    assert [e.properties["points"] for e in club.events(events.POINTS_REVERSED)] == [-110]


def test_a_partial_refund_takes_back_its_share(sqlite_club: Club) -> None:
    club = sqlite_club
    rule(club, "Per euro", kind=RuleKind.per_amount, points=2)
    setup = setup_of(club)
    apply(club.session, setup, [row("p1", "Order Completed", MARCH, order_id="A", revenue=100)])
    apply(club.session, setup, [row("p1", "Order Refunded", MARCH, order_id="A", revenue=25)])
    apply(club.session, setup, [row("p1", "Order Refunded", MARCH, order_id="A", revenue=100)])
    assert [points for _, points in kinds(club, "p1")] == [200, -50, -150]  # never more than it earned
    assert club.balance("p1") == 0


def test_a_reversal_never_takes_the_balance_below_zero(sqlite_club: Club) -> None:
    club = sqlite_club
    rule(club, "Base", points=100)
    setup = setup_of(club)
    apply(club.session, setup, [row("p1", "Order Completed", MARCH, order_id="A")])
    post(club.session, club.program, [Posting("p1", -80, EntryKind.redeem, "spent")])
    apply(club.session, setup, [row("p1", "Order Refunded", MARCH, order_id="A")])
    [reversal] = [e for e in entries_of(club.session, club.program_id, "p1") if e.kind == EntryKind.reverse]
    assert (reversal.points, reversal.details["uncovered"]) == (-20, 80)
    assert club.balance("p1") == 0


def test_through_ingestion_a_refund_reverses(club: Club) -> None:
    rule(club, "Base", points=25)
    ann = track(club, "ann", "Order Completed", order_id="X1", revenue=10)
    track(club, "ann", "Order Refunded", order_id="X1")
    assert club.balance(ann) == 0
    assert [kind for kind, _ in kinds(club, ann)] == ["earn", "reverse"]


def test_a_refund_that_arrives_before_its_order_still_takes_back_what_the_order_earns(club: Club) -> None:
    rule(club, "Base", points=25)
    ann = track(club, "ann", "Order Refunded", order_id="X2")  # applied first: nothing to take back yet
    track(club, "ann", "Order Completed", order_id="X2", revenue=10)
    track(club, "ann", "Order Completed", order_id="X3", revenue=10)
    assert club.balance(ann) == 25
    assert [kind for kind, _ in kinds(club, ann)] == ["earn", "reverse", "earn"]


def test_expiry_dates_follow_the_policy(sqlite_club: Club) -> None:
    program = sqlite_club.program
    assert expires_at(program, MARCH) is None
    program.expiry_policy, program.expiry_months = ExpiryPolicy.rolling, 12
    assert expires_at(program, datetime(2024, 2, 29, tzinfo=UTC)) == datetime(2025, 2, 28, tzinfo=UTC)
    program.expiry_policy, program.expiry_months, program.expiry_day = ExpiryPolicy.fixed_date, 0, "12-31"
    assert expires_at(program, MARCH) == datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    program.expiry_months = 12  # at least a year, then the next 31 December
    assert expires_at(program, MARCH) == datetime(2027, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_points_expire_oldest_first_once(club: Club) -> None:
    club.program.expiry_policy, club.program.expiry_months = ExpiryPolicy.rolling, 6
    club.session.add(club.program)
    rule(club, "Base", points=100)
    setup = setup_of(club)
    apply(
        club.session,
        setup,
        [row("p1", "Order Completed", MARCH), row("p1", "Order Completed", MARCH + timedelta(days=60))],
    )
    post(club.session, club.program, [Posting("p1", -30, EntryKind.redeem, "coffee")])
    club.session.commit()
    # Six months after the first order: its 100 points lapse, less the 30 already spent (oldest first).
    first = expire_due(club.session, club.program, MARCH + timedelta(days=185))
    again = expire_due(club.session, club.program, MARCH + timedelta(days=186))
    club.session.commit()
    assert [e["points"] for e in first.entries] == [-70] and again.entries == []
    assert club.balance("p1") == 100
    later = expire_due(club.session, club.program, MARCH + timedelta(days=250))
    club.session.commit()
    assert [e["points"] for e in later.entries] == [-100]
    assert ledger_sums(club.session, club.program_id, "p1") == {"balance": 0, "earned": 200, "redeemed": 30,
                                                               "expired": 170}  # fmt: skip


def test_tiers_drop_only_when_a_period_ends(sqlite_club: Club) -> None:
    club = sqlite_club
    club.program.period_anchor, club.program.qualifying_months = datetime(2026, 1, 1, tzinfo=UTC), 12
    club.session.add(club.program)
    silver = club.tier("Silver", 0)
    gold = club.tier("Gold", 100)
    rule(club, "Base", points=60)
    setup = setup_of(club)
    apply(club.session, setup, [row("p1", "Order Completed", MARCH), row("p1", "Order Completed", MARCH)])

    def tier() -> int | None:
        club.session.expire_all()
        member = club.session.get(LoyaltyMember, (club.program_id, "p1"))
        assert member is not None
        return member.tier_id

    assert tier() == gold.id
    roll_periods(club.session, club.program, datetime(2026, 12, 31, tzinfo=UTC))
    assert tier() == gold.id  # the period has not ended
    roll_periods(club.session, club.program, datetime(2027, 1, 2, tzinfo=UTC))
    club.session.commit()
    assert tier() == gold.id  # 120 qualified in 2026: Gold is kept through 2027
    rolled = roll_periods(club.session, club.program, datetime(2028, 1, 2, tzinfo=UTC))
    club.session.commit()
    assert tier() == silver.id  # nothing in 2027
    assert [(m.before, m.after) for m in rolled.tier_moves] == [(gold.id, silver.id)]


def test_spend_qualifies_once_per_order(sqlite_club: Club) -> None:
    club = sqlite_club
    club.program.tier_basis = TierBasis.spend
    club.session.add(club.program)
    gold = club.tier("Gold", 300)
    rule(club, "Base", points=1)
    rule(club, "Bonus", points=1)
    apply(club.session, setup_of(club), [row("p1", "Order Completed", MARCH, revenue=200)])
    member = club.session.get(LoyaltyMember, (club.program_id, "p1"))
    assert member is not None and member.qualifying == 200 and member.tier_id is None
    apply(club.session, setup_of(club), [row("p1", "Order Completed", MARCH, revenue=150)])
    club.session.expire_all()
    member = club.session.get(LoyaltyMember, (club.program_id, "p1"))
    assert member is not None and member.tier_id == gold.id


def test_adjustments_say_who_and_why_and_never_overdraw(sqlite_club: Club) -> None:
    club = sqlite_club
    adjust(club.session, club.program, "p1", 50, "agent@shop.test", "Goodwill: late delivery")
    club.session.commit()
    with pytest.raises(InsufficientPoints, match="balance is 50"):
        adjust(club.session, club.program, "p1", -60, "agent@shop.test", "Oops")
    club.session.rollback()
    with pytest.raises(LoyaltyError, match="reason"):
        adjust(club.session, club.program, "p1", 5, "agent@shop.test", " ")
    [entry] = entries_of(club.session, club.program_id, "p1")
    assert (entry.actor, entry.reason, entry.points) == ("agent@shop.test", "Goodwill: late delivery", 50)
    assert club.balance("p1") == 50


def test_when_two_profiles_merge_their_points_join(club: Club) -> None:
    rule(club, "Base", points=10)
    anonymous = {"type": "track", "anonymousId": "device-1", "event": "Order Completed", "properties": {}}
    accept(club.session, "shop", [anonymous])
    process_events("shop", {})
    ann = track(club, "ann", "Order Completed")
    # The device signs in as ann: both profiles merge, and so do their loyalty.
    accept(club.session, "shop", [{"type": "identify", "userId": "ann", "anonymousId": "device-1"}])
    process_events("shop", {})
    track(club, "ann", "Order Completed")
    club.session.expire_all()
    survivor = track(club, "ann", "Page Viewed")
    assert club.balance(survivor) == 30
    assert [m.profile_id for m in club.session.exec(select(LoyaltyMember))] == [survivor]
    assert len({e.profile_id for e in entries_of(club.session, club.program_id, survivor)}) == 1
    assert ann
