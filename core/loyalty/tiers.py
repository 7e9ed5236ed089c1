"""Tiers: which status a member holds, from what qualified them in a period.

Periods are ``qualifying_months`` long, counted from the program's ``period_anchor``. A member's
``qualifying`` (points earned, or spend, in the current period) upgrades them the moment it
reaches a higher tier's threshold. Downgrades only happen when a period ends: the status for the
next period is the tier the ended period qualified for, so status earned in a period is kept
through the next one. A member with no activity for a whole period falls to the base tier.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from sqlmodel import Session, col, select

from core.loyalty.models import LoyaltyProgram, Tier
from core.loyalty.state import MemberState, TierMove

_CACHE = "loyalty.tiers"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def program_tiers(session: Session, program_id: int) -> list[Tier]:
    """The program's tiers, lowest threshold first (read once per transaction)."""
    cache: dict[int, list[Tier]] = session.info.setdefault(_CACHE, {})
    if program_id not in cache:
        query = select(Tier).where(Tier.program_id == program_id).order_by(col(Tier.threshold), col(Tier.id))
        cache[program_id] = list(session.exec(query))
    return cache[program_id]


def forget_tiers(session: Session) -> None:
    """Drop the cached tiers (after changing them in this transaction)."""
    session.info.pop(_CACHE, None)


def period_of(program: LoyaltyProgram, at: datetime) -> int:
    """The index of the tier period holding ``at`` (0: the one starting at the anchor)."""
    anchor, at = _aware(program.period_anchor), _aware(at).astimezone(UTC)
    months = (at.year - anchor.year) * 12 + at.month - anchor.month
    if (at.day, at.time()) < (anchor.day, anchor.time()):
        months -= 1
    return max(0, months // max(1, program.qualifying_months))


def period_finder(program: LoyaltyProgram) -> Callable[[datetime], int]:
    """:func:`period_of` for many moments of one program (each moment computed once)."""
    found: dict[datetime, int] = {}

    def find(at: datetime) -> int:
        period = found.get(at)
        if period is None:
            period = found[at] = period_of(program, at)
        return period

    return find


def period_bounds(program: LoyaltyProgram, period: int) -> tuple[datetime, datetime]:
    """When tier period ``period`` starts and ends (exclusive)."""
    anchor = _aware(program.period_anchor)

    def shifted(months: int) -> datetime:
        total = anchor.month - 1 + months
        return anchor.replace(year=anchor.year + total // 12, month=total % 12 + 1)

    return shifted(period * program.qualifying_months), shifted((period + 1) * program.qualifying_months)


def tier_for(tiers: list[Tier], qualifying: float) -> Tier | None:
    """The highest tier whose threshold ``qualifying`` reaches (None: below every tier)."""
    reached = [tier for tier in tiers if qualifying >= tier.threshold]
    return reached[-1] if reached else None


def rank(tiers: list[Tier], tier_id: int | None) -> int:
    """A tier's place, lowest 0; -1 for no tier (or a tier since deleted)."""
    return next((i for i, tier in enumerate(tiers) if tier.id == tier_id), -1)


def roll_over(
    session: Session, program: LoyaltyProgram, member: MemberState, at: datetime, period: int | None = None
) -> TierMove | None:
    """Close the member's tier periods that ended by ``at`` (``period``, if the caller knows it): set
    the status they qualified for."""
    assert program.id is not None
    period = period_of(program, at) if period is None else period
    if period <= member.period:
        return None
    tiers = program_tiers(session, program.id)
    earned = member.qualifying if period == member.period + 1 else 0.0
    before = member.tier_id
    reached = tier_for(tiers, earned)
    member.period, member.qualifying = period, 0.0
    member.tier_id = reached.id if reached else None
    if member.tier_id == before:
        return None
    member.tier_since = period_bounds(program, period)[0]
    return TierMove(member.profile_id, before, member.tier_id, member.tier_since)


def upgrade(
    session: Session, program: LoyaltyProgram, members: Iterable[MemberState], now: datetime
) -> list[TierMove]:
    """Raise members whose qualifying reached a higher tier; never lowers anyone."""
    assert program.id is not None
    tiers = program_tiers(session, program.id)
    moves: list[TierMove] = []
    if not tiers:
        return moves
    for member in members:
        reached = tier_for(tiers, member.qualifying)
        if reached is not None and rank(tiers, reached.id) > rank(tiers, member.tier_id):
            moves.append(TierMove(member.profile_id, member.tier_id, reached.id, now))
            member.tier_id, member.tier_since = reached.id, now
    return moves
