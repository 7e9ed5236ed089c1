"""A program's figures for its dashboard: members per tier, points per day, totals.

Every figure is summed from the ledger (and the member rows for counts) by the database, grouped
by kind of entry: *issued* is what members were given (earned, challenges, referrals, positive
adjustments), *redeemed* what rewards took less what cancelled redemptions gave back, *expired*
and *reversed* (refunded orders) what lapsed or was taken back, and *outstanding* what members
hold (the program's liability). Days are the tenant's, ledger entries counted by when they
happened.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import Session

from core.db.base import utcnow
from core.loyalty.ledger import LEDGER, MEMBER
from core.loyalty.models import EntryKind, Tier

TIER = Tier.__table__  # type: ignore[attr-defined]
NO_TIER = "No tier"
ISSUED = (EntryKind.earn, EntryKind.challenge, EntryKind.referral)
# Local midnights fall on a quarter hour in UTC in every zone in use, so entries grouped by UTC
# quarter hour (SQLite has no time zones) never straddle two local days.
QUARTER = 900


@dataclass(frozen=True)
class DayPoints:
    """One day of a program's points (in the tenant's zone); ``outstanding`` as the day ended."""

    day: date
    issued: int = 0
    redeemed: int = 0
    expired: int = 0
    reversed: int = 0
    outstanding: int = 0


@dataclass(frozen=True)
class Totals:
    """A program's figures since it started."""

    members: int = 0
    issued: int = 0
    redeemed: int = 0
    expired: int = 0
    reversed: int = 0
    outstanding: int = 0


@dataclass
class _Sums:
    """Points of some entries, by what they did to balances."""

    issued: int = 0
    redeemed: int = 0
    expired: int = 0
    reversed: int = 0
    net: int = 0

    def add(self, kind: str, net: int, positive: int) -> None:
        """Count the entries of one kind: their sum, and the sum of their positive points."""
        self.net += net
        if kind in ISSUED:
            self.issued += net
        elif kind == EntryKind.adjust:
            self.issued += positive  # taking points by hand is not "issuing" negative points
        elif kind in (EntryKind.redeem, EntryKind.refund):
            self.redeemed -= net
        elif kind == EntryKind.expire:
            self.expired -= net
        elif kind == EntryKind.reverse:
            self.reversed -= net


def _sums_columns() -> list[Any]:
    positive = sa.case((LEDGER.c.points > 0, LEDGER.c.points), else_=0)
    return [
        LEDGER.c.kind,
        sa.func.coalesce(sa.func.sum(LEDGER.c.points), 0),
        sa.func.coalesce(sa.func.sum(positive), 0),
    ]


def members_by_tier(session: Session, program_id: int) -> list[tuple[str, int]]:
    """How many members hold each tier (lowest first, every tier listed), after those with none."""
    connection = session.connection()
    counted = sa.select(MEMBER.c.tier_id, sa.func.count()).where(MEMBER.c.program_id == program_id)
    per_tier = {
        tier_id: int(number) for tier_id, number in connection.execute(counted.group_by(MEMBER.c.tier_id))
    }
    tiers = connection.execute(
        sa.select(TIER.c.id, TIER.c.name)
        .where(TIER.c.program_id == program_id)
        .order_by(TIER.c.threshold, TIER.c.id)
    ).all()
    known = {tier_id for tier_id, _ in tiers}
    # Held tiers cannot be deleted, but a member row naming no tier of the program must still be counted.
    without = sum(number for tier_id, number in per_tier.items() if tier_id not in known)
    found = [(NO_TIER, without)] if without else []
    return found + [(name, per_tier.get(tier_id, 0)) for tier_id, name in tiers]


def totals(session: Session, program_id: int) -> Totals:
    """The program's members and points issued, redeemed, expired, reversed and outstanding."""
    connection = session.connection()
    members = connection.execute(
        sa.select(sa.func.count()).select_from(MEMBER).where(MEMBER.c.program_id == program_id)
    ).scalar()
    sums = _Sums()
    query = sa.select(*_sums_columns()).where(LEDGER.c.program_id == program_id).group_by(LEDGER.c.kind)
    for kind, net, positive in connection.execute(query):
        sums.add(kind, int(net), int(positive))
    return Totals(int(members or 0), sums.issued, sums.redeemed, sums.expired, sums.reversed, sums.net)


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), zone).astimezone(UTC)


def _per_day(
    connection: Connection, program_id: int, zone: ZoneInfo, start: datetime, end: datetime
) -> Iterable[tuple[date, str, int, int]]:
    """(local day, kind, sum of points, sum of positive points) of the entries in ``[start, end)``."""
    moment = LEDGER.c.occurred_at
    window = (LEDGER.c.program_id == program_id, moment >= start, moment < end)
    if connection.dialect.name == "postgresql":
        day = sa.func.date(sa.func.timezone(zone.key, moment))
        query = sa.select(day, *_sums_columns()).where(*window).group_by(day, LEDGER.c.kind)
        for found, kind, net, positive in connection.execute(query):
            yield found, kind, int(net), int(positive)
        return
    epoch = int(start.timestamp())
    quarter = (sa.cast(sa.func.strftime("%s", moment), sa.Integer) - epoch) // QUARTER
    query = sa.select(quarter, *_sums_columns()).where(*window).group_by(quarter, LEDGER.c.kind)
    for index, kind, net, positive in connection.execute(query):
        local = (start + timedelta(seconds=int(index) * QUARTER)).astimezone(zone).date()
        yield local, kind, int(net), int(positive)


def points_over_time(
    session: Session, program_id: int, zone: ZoneInfo, days: int = 90, today: date | None = None
) -> list[DayPoints]:
    """The last ``days`` days up to ``today`` (the tenant's today by default), one entry per day.

    ``outstanding`` is the total of every balance as the day ended, entries before the first day
    included.
    """
    today = today or utcnow().astimezone(zone).date()
    first = today - timedelta(days=max(1, days) - 1)
    start, end = _local_midnight(first, zone), _local_midnight(today + timedelta(days=1), zone)
    connection = session.connection()
    opening = connection.execute(
        sa.select(sa.func.coalesce(sa.func.sum(LEDGER.c.points), 0)).where(
            LEDGER.c.program_id == program_id, LEDGER.c.occurred_at < start
        )
    ).scalar()
    sums: defaultdict[date, _Sums] = defaultdict(_Sums)
    for day, kind, net, positive in _per_day(connection, program_id, zone, start, end):
        sums[day].add(kind, net, positive)
    found: list[DayPoints] = []
    outstanding = int(opening or 0)
    for offset in range((today - first).days + 1):
        day = first + timedelta(days=offset)
        of_day = sums.get(day, _Sums())
        outstanding += of_day.net
        found.append(
            DayPoints(day, of_day.issued, of_day.redeemed, of_day.expired, of_day.reversed, outstanding)
        )
    return found
