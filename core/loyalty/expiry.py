"""Points expiry: when earned points lapse, and the job that records what lapsed.

Points are spent oldest first. So what is due to expire by now is what was earned with an expiry
up to now, less everything taken from the balance so far (redemptions, reversals, earlier
expiries, negative adjustments), and never less than zero: one sum per member, recorded as an
``expire`` entry whose key names the last lapse it covers (running again records nothing).
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Session

from core.db.base import utcnow
from core.loyalty.ledger import LEDGER, MEMBER, Posted, Posting, lock_members, post, save_members
from core.loyalty.models import EntryKind, ExpiryPolicy, LoyaltyProgram
from core.loyalty.tiers import period_of, roll_over

CHUNK = 2_000


def _add_months(moment: datetime, months: int) -> datetime:
    total = moment.month - 1 + months
    year, month = moment.year + total // 12, total % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def expires_at(program: LoyaltyProgram, earned_at: datetime) -> datetime | None:
    """When points earned at ``earned_at`` lapse under the program's policy (None: never)."""
    if program.expiry_policy == ExpiryPolicy.never:
        return None
    earned_at = earned_at if earned_at.tzinfo else earned_at.replace(tzinfo=UTC)
    after = _add_months(earned_at, program.expiry_months)
    if program.expiry_policy == ExpiryPolicy.rolling:
        return after
    month, day = (int(part) for part in program.expiry_day.split("-"))
    for year in (after.year, after.year + 1):
        day_in_year = min(day, calendar.monthrange(year, month)[1])
        lapse = datetime(year, month, day_in_year, 23, 59, 59, tzinfo=UTC)
        if lapse >= after:
            return lapse
    raise AssertionError("unreachable: the next year always has the day")


def expire_due(session: Session, program: LoyaltyProgram, now: datetime | None = None) -> Posted:
    """Record the expiry of every member's points that lapsed by ``now``; what was recorded."""
    assert program.id is not None
    now = now or utcnow()
    positive = LEDGER.c.points > 0
    lapsed = sa.and_(positive, LEDGER.c.expires_at.is_not(None), LEDGER.c.expires_at <= now)
    due = sa.func.sum(sa.case((lapsed, LEDGER.c.points), else_=0))
    taken = sa.func.sum(sa.case((LEDGER.c.points < 0, -LEDGER.c.points), else_=0))
    last = sa.func.max(sa.case((lapsed, LEDGER.c.expires_at), else_=None))
    query = (
        sa.select(LEDGER.c.profile_id, due.label("due"), taken.label("taken"), last.label("last"))
        .where(LEDGER.c.program_id == program.id)
        .group_by(LEDGER.c.profile_id)
        .having(due > taken)
        .order_by(LEDGER.c.profile_id)
    )
    found = list(session.connection().execute(query))
    posted = Posted()
    for start in range(0, len(found), CHUNK):
        rows = found[start : start + CHUNK]
        postings = [
            Posting(
                profile_id=row.profile_id,
                points=-int(row.due - row.taken),
                kind=EntryKind.expire,
                key=f"expire:{program.id}:{row.profile_id}:{_iso(row.last)}",
                reason="Points expired",
                occurred_at=now,
            )
            for row in rows
        ]
        posted.extend(post(session, program, postings, clamp=True, now=now))
    return posted


def _iso(moment: datetime) -> str:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def roll_periods(session: Session, program: LoyaltyProgram, now: datetime | None = None) -> Posted:
    """Close the tier periods that ended for members who earned nothing since (downgrades)."""
    assert program.id is not None
    now = now or utcnow()
    current = period_of(program, now)
    query = (
        sa.select(MEMBER.c.profile_id)
        .where(MEMBER.c.program_id == program.id, MEMBER.c.period < current)
        .order_by(MEMBER.c.profile_id)
    )
    stale = [row.profile_id for row in session.connection().execute(query)]
    posted = Posted()
    for start in range(0, len(stale), CHUNK):
        members = lock_members(session, program, stale[start : start + CHUNK], create=False)
        for member in members.values():
            move = roll_over(session, program, member, now)
            if move is not None:
                posted.tier_moves.append(move)
        save_members(session, program, members.values(), now)
    return posted
