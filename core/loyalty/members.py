"""Members by hand and across merges: manual adjustments, and moving loyalty to a merged profile."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session, select

from core.db.base import utcnow
from core.loyalty import events
from core.loyalty.ledger import LEDGER, MEMBER, LoyaltyError, Posted, Posting, ledger_sums, lock_members, post
from core.loyalty.models import (
    ChallengeProgress,
    Coupon,
    EntryKind,
    LoyaltyMember,
    LoyaltyProgram,
    ProgramStatus,
    Redemption,
    Referral,
)
from core.loyalty.tiers import program_tiers, rank


def adjust(
    session: Session,
    program: LoyaltyProgram,
    profile_id: str,
    points: int,
    actor: str,
    reason: str,
    *,
    idempotency_key: str | None = None,
) -> Posted:
    """Add (or with negative ``points``, take) points by hand, with who and why on the entry.

    :class:`~core.loyalty.ledger.InsufficientPoints` if it would take more than the balance.
    """
    if program.status != ProgramStatus.active:
        raise LoyaltyError(f"Program {program.name!r} is archived: its balances no longer change.")
    if points == 0:
        raise LoyaltyError("An adjustment needs a number of points other than 0.")
    if not reason.strip():
        raise LoyaltyError("Say why: an adjustment needs a reason.")
    key = f"adjust:{idempotency_key}" if idempotency_key else f"adjust:{utcnow().isoformat()}:{profile_id}"
    posting = Posting(
        profile_id=profile_id, points=points, kind=EntryKind.adjust, key=key[:300], actor=actor,
        reason=reason.strip()[:500], qualifying=0.0,
    )  # fmt: skip
    posted = post(session, program, [posting])
    events.record(session, program, posted)
    return posted


def absorb(session: Session, absorbed_id: str, survivor_id: str) -> None:
    """Move everything loyalty holds for a merged-away profile to the profile it merged into.

    Ledger entries, vouchers, coupons, challenge progress and referrals follow the person; the
    survivor's member sums are recomputed from the moved ledger, and the higher tier is kept.
    """
    connection = session.connection()
    connection.execute(
        LEDGER.update().where(LEDGER.c.profile_id == absorbed_id).values(profile_id=survivor_id)
    )
    for table, column in ((Redemption.__table__, "profile_id"), (Referral.__table__, "referrer_id")):  # type: ignore[attr-defined]
        connection.execute(table.update().where(table.c[column] == absorbed_id).values({column: survivor_id}))
    _move_unless_held(session, Referral, "program_id", "referee_id", absorbed_id, survivor_id)
    _move_unless_held(session, Coupon, "offer_id", "profile_id", absorbed_id, survivor_id)
    _move_unless_held(session, ChallengeProgress, "challenge_id", "profile_id", absorbed_id, survivor_id)
    absorbed_members = list(
        session.exec(select(LoyaltyMember).where(LoyaltyMember.profile_id == absorbed_id))
    )
    for gone in absorbed_members:
        program = session.get(LoyaltyProgram, gone.program_id)
        assert program is not None and program.id is not None
        mine = sa.and_(MEMBER.c.program_id == program.id, MEMBER.c.profile_id == absorbed_id)
        if session.get(LoyaltyMember, (program.id, survivor_id)) is None:  # the member row (and code) moves
            connection.execute(MEMBER.update().where(mine).values(profile_id=survivor_id))
            continue
        kept = lock_members(session, program, [survivor_id])[survivor_id]
        sums = ledger_sums(session, program.id, survivor_id)
        tiers = program_tiers(session, program.id)
        if rank(tiers, gone.tier_id) > rank(tiers, kept.tier_id):
            kept.tier_id, kept.tier_since = gone.tier_id, gone.tier_since
        if gone.period == kept.period:
            kept.qualifying += gone.qualifying
        values = {**sums, "tier_id": kept.tier_id, "tier_since": kept.tier_since, "qualifying": kept.qualifying,
                  "updated_at": utcnow()}  # fmt: skip
        connection.execute(
            MEMBER.update()
            .where(MEMBER.c.program_id == program.id, MEMBER.c.profile_id == survivor_id)
            .values(values)
        )
        connection.execute(MEMBER.delete().where(mine))


def _move_unless_held(
    session: Session, model: type, group: str, column: str, absorbed_id: str, survivor_id: str
) -> None:
    """Give the absorbed profile's rows to the survivor, except in groups where it has its own."""
    table = model.__table__  # type: ignore[attr-defined]
    held = sa.select(table.c[group]).where(table.c[column] == survivor_id)
    session.connection().execute(
        table.update()
        .where(table.c[column] == absorbed_id, table.c[group].not_in(held))
        .values({column: survivor_id})
    )
