"""A program's dashboard figures, summed by the database from ledger entries posted as the engine
posts them: members per tier, points per day in the tenant's zone (across a change of summer
time, and in a zone half an hour off UTC), the outstanding balance each day, and the totals."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from core.loyalty import ledger
from core.loyalty.dashboard import DayPoints, Totals, members_by_tier, points_over_time, totals
from core.loyalty.ledger import Posting
from core.loyalty.models import EntryKind
from tests.loyalty.club import Club, club

__all__ = ["club"]
PARIS = ZoneInfo("Europe/Paris")  # summer time from 2026-03-29 02:00 (UTC+1 → UTC+2)
KOLKATA = ZoneInfo("Asia/Kolkata")  # UTC+5:30


def at(text: str) -> datetime:
    """A moment given in UTC (``2026-03-27 10:00``)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def posting(profile_id: str, points: int, kind: EntryKind, when: str, qualifying: float = 0) -> Posting:
    """An entry of ``kind`` that happened at ``when`` (UTC)."""
    key = f"{kind}:{profile_id}:{when}:{points}"
    return Posting(profile_id, points, kind, key=key, qualifying=qualifying, occurred_at=at(when))


def post(club: Club, *postings: Posting) -> None:
    """Record the postings, in order, as the engine would."""
    ledger.post(club.session, club.program, list(postings))
    club.session.commit()


def history(club: Club) -> None:
    """A week of a small program: a balance before the week, then every kind of entry."""
    post(
        club,
        posting("p1", 1000, EntryKind.earn, "2026-03-20 09:00"),  # before the days shown
        posting("p1", 100, EntryKind.earn, "2026-03-27 10:00"),
        posting("p2", 50, EntryKind.adjust, "2026-03-27 11:00"),
        posting("p1", -20, EntryKind.adjust, "2026-03-27 12:00"),  # taken by hand: not issued
        posting("p2", 30, EntryKind.challenge, "2026-03-28 23:30"),  # 00:30 on the 29th in Paris
        posting("p2", 10, EntryKind.referral, "2026-03-28 23:45"),
        posting("p1", -200, EntryKind.redeem, "2026-03-29 12:00"),
        posting("p1", 50, EntryKind.refund, "2026-03-29 13:00"),  # that redemption, cancelled
        posting("p1", -100, EntryKind.expire, "2026-03-30 22:30"),  # 00:30 on the 31st (summer time)
        posting("p2", -40, EntryKind.reverse, "2026-03-30 22:45"),
        posting("p1", 7, EntryKind.earn, "2026-04-01 10:00"),  # after the last day shown
    )


def test_points_per_day_in_the_tenants_zone_with_the_outstanding_balance_each_evening(club: Club) -> None:
    history(club)

    days = points_over_time(club.session, club.program_id, PARIS, days=5, today=date(2026, 3, 31))

    assert days == [
        DayPoints(date(2026, 3, 27), issued=150, outstanding=1130),
        DayPoints(date(2026, 3, 28), outstanding=1130),
        DayPoints(date(2026, 3, 29), issued=40, redeemed=150, outstanding=1020),
        DayPoints(date(2026, 3, 30), outstanding=1020),
        DayPoints(date(2026, 3, 31), expired=100, reversed=40, outstanding=880),
    ]


def test_the_totals_add_up_the_whole_ledger_and_match_the_members_balances(club: Club) -> None:
    history(club)

    found = totals(club.session, club.program_id)

    assert found == Totals(members=2, issued=1197, redeemed=150, expired=100, reversed=40, outstanding=887)
    assert found.outstanding == club.balance("p1") + club.balance("p2")


def test_days_in_a_zone_half_an_hour_off_utc_end_at_its_own_midnight(club: Club) -> None:
    post(
        club,
        posting("p1", 1, EntryKind.earn, "2026-05-01 18:29"),  # 23:59 in Kolkata
        posting("p1", 10, EntryKind.earn, "2026-05-01 18:30"),  # midnight: the 2nd
        posting("p1", 100, EntryKind.earn, "2026-05-02 18:29:59"),
    )

    days = points_over_time(club.session, club.program_id, KOLKATA, days=2, today=date(2026, 5, 2))

    assert [(d.day.isoformat(), d.issued, d.outstanding) for d in days] == [
        ("2026-05-01", 1, 1),
        ("2026-05-02", 110, 111),
    ]


def test_members_are_counted_per_tier_with_every_tier_listed(club: Club) -> None:
    club.tier("Gold", 1000)
    club.tier("Silver", 100)
    club.tier("Platinum", 5000)
    post(
        club,
        posting("p1", 1000, EntryKind.earn, "2026-03-02 10:00", qualifying=1000),
        posting("p2", 150, EntryKind.earn, "2026-03-02 10:00", qualifying=150),
        posting("p3", 150, EntryKind.earn, "2026-03-02 11:00", qualifying=150),
        posting("p4", 5, EntryKind.earn, "2026-03-02 10:00", qualifying=5),
    )

    assert members_by_tier(club.session, club.program_id) == [
        ("No tier", 1),
        ("Silver", 2),
        ("Gold", 1),
        ("Platinum", 0),
    ]


def test_a_new_program_shows_every_day_at_zero(club: Club) -> None:
    days = points_over_time(club.session, club.program_id, PARIS, days=3, today=date(2026, 3, 31))

    assert [d.day.isoformat() for d in days] == ["2026-03-29", "2026-03-30", "2026-03-31"]
    assert all(d == DayPoints(d.day) for d in days)
    assert totals(club.session, club.program_id) == Totals()
    assert members_by_tier(club.session, club.program_id) == []
