"""A member's standing in each loyalty program, read for many profiles at once.

The standing is what a profile shows of its membership: balance and totals, tier and the way to
the next one, the next reward in reach, badges, referral code. Templates read it as ``loyalty``
(:func:`loyalty_namespace`), wallet passes as fields (:meth:`Standing.fields`), and segment
conditions test the same values, so "points to the next tier" means one thing everywhere.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import Session

from core.db.base import utcnow
from core.db.bulk import select_in
from core.loyalty.models import (
    Challenge,
    ChallengeProgress,
    LoyaltyMember,
    LoyaltyProgram,
    ProgramStatus,
    Reward,
    RewardStatus,
    Tier,
)

PROGRAM = LoyaltyProgram.__table__  # type: ignore[attr-defined]
TIER = Tier.__table__  # type: ignore[attr-defined]
MEMBER = LoyaltyMember.__table__  # type: ignore[attr-defined]
REWARD = Reward.__table__  # type: ignore[attr-defined]
CHALLENGE = Challenge.__table__  # type: ignore[attr-defined]
PROGRESS = ChallengeProgress.__table__  # type: ignore[attr-defined]

# The keys of Standing.fields(). At the top of the ``loyalty`` namespace they are the first program's
# values, so a program keyed like one of them is reached there only by that field's name.
FIELD_NAMES = (
    "key", "name", "currency", "balance", "earned", "redeemed", "expired", "tier", "next_tier",
    "to_next_tier", "qualifying", "next_reward", "to_next_reward", "badges", "referral_code",
)  # fmt: skip


@dataclass(frozen=True)
class Standing:
    """One profile's standing in one program (``member`` False: not a member, all zero)."""

    program_id: int
    program_key: str
    program_name: str
    currency: str
    balance: int = 0
    earned: int = 0
    redeemed: int = 0
    expired: int = 0
    tier: str | None = None
    tier_multiplier: float = 1.0
    next_tier: str | None = None
    to_next_tier: float | None = None  # qualifying value still needed; None at the top tier
    qualifying: float = 0.0
    next_reward: str | None = None  # the cheapest available reward the balance does not cover yet
    to_next_reward: int | None = None
    badges: tuple[str, ...] = ()
    referral_code: str = ""
    member: bool = True

    def fields(self) -> dict[str, Any]:
        """The standing as JSON-able values, for templates and wallet pass fields."""
        return {
            "key": self.program_key, "name": self.program_name, "currency": self.currency,
            "balance": self.balance, "earned": self.earned, "redeemed": self.redeemed,
            "expired": self.expired, "tier": self.tier, "next_tier": self.next_tier,
            "to_next_tier": self.to_next_tier, "qualifying": self.qualifying, "next_reward": self.next_reward,
            "to_next_reward": self.to_next_reward, "badges": list(self.badges),
            "referral_code": self.referral_code,
        }  # fmt: skip


@dataclass(frozen=True)
class Rung:
    """A tier as the ladder orders it: by threshold, then by id (the order of creation)."""

    id: int
    name: str
    threshold: float
    multiplier: float


def next_rung(ladder: Sequence[Rung], current: Rung | None) -> Rung | None:
    """The tier above ``current`` on ``ladder`` (sorted), the lowest one without a tier; None at the top."""
    if current is None:
        return ladder[0] if ladder else None
    return next((r for r in ladder if (r.threshold, r.id) > (current.threshold, current.id)), None)


def still_needed(threshold: float, qualifying: float) -> float:
    """What a member with ``qualifying`` still needs to reach ``threshold`` (never below 0)."""
    return max(0.0, float(threshold) - float(qualifying))


def standings(
    session: Session | Connection,
    profile_ids: Collection[str],
    *,
    program_ids: Collection[int] | None = None,
    now: datetime | None = None,
) -> dict[str, list[Standing]]:
    """Every one of ``profile_ids`` with its standings, in program id order (empty: a member of none).

    By default the active programs; ``program_ids`` names programs to read whatever their status.
    Rewards count as available at ``now`` (default: now).
    """
    connection = session.connection() if isinstance(session, Session) else session
    found: dict[str, list[Standing]] = {pid: [] for pid in profile_ids}
    query = sa.select(PROGRAM.c.id, PROGRAM.c.key, PROGRAM.c.name, PROGRAM.c.currency).order_by(PROGRAM.c.id)
    if program_ids is None:
        query = query.where(PROGRAM.c.status == ProgramStatus.active.value)
    else:
        query = query.where(PROGRAM.c.id.in_(sorted(set(program_ids))))
    programs = {row.id: row for row in connection.execute(query)}
    if not programs or not found:
        return found
    in_programs = sa.select(MEMBER).where(MEMBER.c.program_id.in_(list(programs)))
    members = list(select_in(connection, in_programs, MEMBER.c.profile_id, found, pg_type="text"))
    if not members:
        return found
    ladders = _ladders(connection, programs)
    rewards = _rewards(connection, programs, now or utcnow())
    badges = _badges(connection, programs, {m.profile_id for m in members})
    for row in sorted(members, key=lambda m: m.program_id):
        program = programs[row.program_id]
        ladder = ladders.get(row.program_id, [])
        current = next((rung for rung in ladder if rung.id == row.tier_id), None)
        upper = next_rung(ladder, current)
        reward = next(
            ((name, cost) for name, cost in rewards.get(row.program_id, []) if cost > row.balance), None
        )
        found[row.profile_id].append(Standing(
            program_id=row.program_id, program_key=program.key, program_name=program.name,
            currency=program.currency, balance=row.balance, earned=row.earned, redeemed=row.redeemed,
            expired=row.expired, tier=current.name if current else None,
            tier_multiplier=current.multiplier if current else 1.0, next_tier=upper.name if upper else None,
            to_next_tier=still_needed(upper.threshold, row.qualifying) if upper else None,
            qualifying=float(row.qualifying), next_reward=reward[0] if reward else None,
            to_next_reward=reward[1] - row.balance if reward else None,
            badges=tuple(badges.get((row.profile_id, row.program_id), ())), referral_code=row.referral_code,
        ))  # fmt: skip
    return found


def program_starts(connection: Connection) -> list[Standing]:
    """The standing of someone in none of the active programs yet: zero everywhere, by program id."""
    query = sa.select(PROGRAM.c.id, PROGRAM.c.key, PROGRAM.c.name, PROGRAM.c.currency).where(
        PROGRAM.c.status == ProgramStatus.active.value
    )
    return [
        Standing(
            program_id=row.id, program_key=row.key, program_name=row.name, currency=row.currency, member=False
        )
        for row in connection.execute(query.order_by(PROGRAM.c.id))
    ]


def loyalty_namespace(standings: Sequence[Standing]) -> dict[str, Any]:
    """What templates read as ``loyalty``: each program's fields under its key
    (``loyalty.club.balance``) and the first program's also at the top (``loyalty.balance``).

    Fields without a value (no tier, no next tier) are left out, so a message using them reports
    the value missing instead of printing "None". Empty for a profile that is a member of no program.
    """
    if not standings:
        return {}
    namespace: dict[str, Any] = {standing.program_key: present(standing) for standing in standings}
    namespace.update(present(standings[0]))
    return namespace


def present(standing: Standing) -> dict[str, Any]:
    """A standing's fields that have a value (what templates read)."""
    return {name: value for name, value in standing.fields().items() if value is not None}


def _ladders(connection: Connection, programs: Iterable[int]) -> dict[int, list[Rung]]:
    query = (
        sa.select(TIER.c.id, TIER.c.program_id, TIER.c.name, TIER.c.threshold, TIER.c.multiplier)
        .where(TIER.c.program_id.in_(list(programs)))
        .order_by(TIER.c.threshold, TIER.c.id)
    )
    ladders: defaultdict[int, list[Rung]] = defaultdict(list)
    for row in connection.execute(query):
        ladders[row.program_id].append(Rung(row.id, row.name, float(row.threshold), float(row.multiplier)))
    return ladders


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _rewards(
    connection: Connection, programs: Iterable[int], now: datetime
) -> dict[int, list[tuple[str, int]]]:
    """(name, cost) of the rewards each program offers at ``now``, cheapest first."""
    query = (
        sa.select(REWARD.c.program_id, REWARD.c.name, REWARD.c.cost, REWARD.c.stock, REWARD.c.valid_from,
                  REWARD.c.valid_until)
        .where(REWARD.c.program_id.in_(list(programs)), REWARD.c.status == RewardStatus.active.value)
        .order_by(REWARD.c.cost, REWARD.c.id)
    )  # fmt: skip
    now = _aware(now)
    offered: defaultdict[int, list[tuple[str, int]]] = defaultdict(list)
    for row in connection.execute(query):
        in_stock = row.stock is None or row.stock > 0
        started = row.valid_from is None or _aware(row.valid_from) <= now
        not_ended = row.valid_until is None or now <= _aware(row.valid_until)
        if in_stock and started and not_ended:
            offered[row.program_id].append((row.name, row.cost))
    return offered


def _badges(
    connection: Connection, programs: Iterable[int], profile_ids: Collection[str]
) -> dict[tuple[str, int], list[str]]:
    """The badges of the challenges each member completed, per (profile, program), in completion order."""
    query = (
        sa.select(PROGRESS.c.profile_id, CHALLENGE.c.program_id, CHALLENGE.c.badge)
        .select_from(PROGRESS.join(CHALLENGE, CHALLENGE.c.id == PROGRESS.c.challenge_id))
        .where(CHALLENGE.c.program_id.in_(list(programs)), PROGRESS.c.completed_at.is_not(None))
        .order_by(PROGRESS.c.completed_at, CHALLENGE.c.id)
    )
    won: defaultdict[tuple[str, int], list[str]] = defaultdict(list)
    for row in select_in(connection, query, PROGRESS.c.profile_id, profile_ids, pg_type="text"):
        won[(row.profile_id, row.program_id)].append(row.badge)
    return won
