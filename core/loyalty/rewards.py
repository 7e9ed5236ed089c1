"""The rewards catalogue, and redeeming rewards for vouchers.

A redemption takes the reward's cost from the member's balance (through the ledger), one unit of
the reward's stock, and issues a voucher with a unique code that the till or the shop marks used.
An unused voucher can be cancelled: its points and its unit of stock come back.

Redeeming never oversells: it locks the member's row, then the reward's row (always in that
order, here and when cancelling), checks the balance, stock, limit, validity and tier under those
locks and changes them in the same transaction. ``issued`` counts the vouchers not cancelled.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.db.base import utcnow
from core.loyalty import events, tiers
from core.loyalty.ledger import CODE_ALPHABET, InsufficientPoints, LoyaltyError, Posting, lock_members, post
from core.loyalty.models import (
    EntryKind,
    LoyaltyProgram,
    ProgramStatus,
    Redemption,
    RedemptionStatus,
    Reward,
    RewardStatus,
    Tier,
)
from core.loyalty.state import MemberState

log = logging.getLogger(__name__)
CODE_LENGTH = 8  # from a 31-letter alphabet: about 40 bits, so a collision is rare and retried
CODE_TRIES = 5
T = TypeVar("T")


class RewardNotFound(LookupError):
    """No reward has this id (in this program)."""


class RedemptionNotFound(LookupError):
    """No redemption has this id, or no voucher this code."""


class NameTaken(LoyaltyError):
    """Another reward (or offer) already has this name."""


class Refused(LoyaltyError):
    """A redemption, voucher or coupon operation is refused; ``code`` says why in one word for
    programs, the message says it in words for people."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


class RedemptionRefused(Refused):
    """Redeeming, using or cancelling a voucher is refused.

    Codes: ``insufficient_points``, ``out_of_stock``, ``limit_reached``, ``not_valid_yet``,
    ``expired``, ``archived``, ``tier_required``, ``not_a_member``, ``key_reused`` (an idempotency
    key already used for another redemption), ``used``, ``cancelled``.
    """


class RewardIn(BaseModel):
    """A reward of the catalogue as a marketer gives it (times without an offset are UTC)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    cost: int = Field(gt=0, le=100_000_000, description="Points the reward takes from the balance.")
    stock: int | None = Field(default=None, ge=0, description="Units left; none: unlimited.")
    per_profile_limit: int | None = Field(default=None, ge=1, description="Vouchers one member may hold.")
    min_tier_id: int | None = Field(default=None, description="The lowest tier that may redeem it.")
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    voucher_days: int | None = Field(default=None, ge=1, le=3660, description="Days a voucher stays valid.")
    status: RewardStatus = RewardStatus.active


def aware(moment: datetime | None) -> datetime | None:
    """``moment`` with a time zone (a naive one is taken as UTC)."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def new_code(prefix: str = "") -> str:
    """A fresh voucher or coupon code: ``PREFIX-XXXXXXXX`` (letters and digits people do not mix up)."""
    body = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return f"{prefix}-{body}" if prefix else body


def code_prefix(text: str) -> str:
    """The first letters and digits of ``text``, upper case, at most 6 (``Free coffee`` → ``FREECO``)."""
    return "".join(ch for ch in text.upper() if ch.isascii() and ch.isalnum())[:6]


def _insert_with_code(session: Session, make: Callable[[str], T], prefix: str) -> T:
    """Add the row ``make(code)`` builds with a fresh code, drawing again if the code is taken."""
    for _ in range(CODE_TRIES):
        row = make(new_code(prefix))
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:  # the savepoint's rollback took the row out of the session
            continue
        return row
    raise LoyaltyError(f"Could not draw a free code after {CODE_TRIES} tries: try again.")


# --- the catalogue ---------------------------------------------------------------------------------
def _program(session: Session, program_id: int) -> LoyaltyProgram:
    program = session.get(LoyaltyProgram, program_id)
    if program is None:
        raise LoyaltyError(f"There is no loyalty program {program_id}.")
    if program.status == ProgramStatus.archived:
        raise LoyaltyError(f"Program {program.name!r} is archived: its catalogue no longer changes.")
    return program


def _checked(session: Session, program_id: int, body: RewardIn, reward_id: int | None) -> dict[str, Any]:
    _program(session, program_id)
    name = body.name.strip()
    if not name:
        raise LoyaltyError("Give the reward a name.")
    taken = session.exec(
        select(Reward.id).where(Reward.program_id == program_id, Reward.name == name)
    ).first()
    if taken is not None and taken != reward_id:
        raise NameTaken(f"The program already has a reward named {name!r}.")
    if body.min_tier_id is not None:
        tier = session.get(Tier, body.min_tier_id)
        if tier is None or tier.program_id != program_id:
            raise LoyaltyError(f"There is no tier {body.min_tier_id} in this program.")
    values = body.model_dump()
    values.update(name=name, valid_from=aware(body.valid_from), valid_until=aware(body.valid_until))
    if values["valid_from"] and values["valid_until"] and values["valid_until"] <= values["valid_from"]:
        raise LoyaltyError("valid_until must come after valid_from.")
    return values


def create_reward(session: Session, program_id: int, body: RewardIn, actor: str) -> Reward:
    """A new reward in the program's catalogue; :class:`LoyaltyError` if it cannot be."""
    reward = Reward(program_id=program_id, **_checked(session, program_id, body, None))
    session.add(reward)
    session.flush()
    log.info("reward %s (%r) created by %s", reward.id, reward.name, actor)
    return reward


def _locked_reward(session: Session, program_id: int | None, reward_id: int) -> Reward:
    query = select(Reward).where(Reward.id == reward_id).with_for_update()
    reward = session.exec(query.execution_options(populate_existing=True)).first()
    if reward is None or (program_id is not None and reward.program_id != program_id):
        raise RewardNotFound(f"There is no reward {reward_id} in this program.")
    return reward


def update_reward(session: Session, program_id: int, reward_id: int, body: RewardIn, actor: str) -> Reward:
    """Replace a reward's settings (``stock`` is the number of units left from now on)."""
    reward = _locked_reward(session, program_id, reward_id)
    for name, value in _checked(session, program_id, body, reward_id).items():
        setattr(reward, name, value)
    reward.updated_at = utcnow()
    session.add(reward)
    session.flush()
    log.info("reward %s (%r) changed by %s", reward.id, reward.name, actor)
    return reward


def archive_reward(session: Session, program_id: int, reward_id: int, actor: str) -> Reward:
    """Withdraw a reward from the catalogue (vouchers already issued stay valid)."""
    reward = _locked_reward(session, program_id, reward_id)
    reward.status, reward.updated_at = RewardStatus.archived, utcnow()
    session.add(reward)
    session.flush()
    log.info("reward %s (%r) archived by %s", reward.id, reward.name, actor)
    return reward


def get_reward(session: Session, reward_id: int, program_id: int | None = None) -> Reward:
    """The reward, or :class:`RewardNotFound` (also when it belongs to another program)."""
    reward = session.get(Reward, reward_id)
    if reward is None or (program_id is not None and reward.program_id != program_id):
        raise RewardNotFound(f"There is no reward {reward_id} in this program.")
    return reward


def list_rewards(session: Session, program_id: int, include_archived: bool = False) -> list[Reward]:
    """The program's rewards, cheapest first."""
    query = select(Reward).where(Reward.program_id == program_id)
    if not include_archived:
        query = query.where(Reward.status == RewardStatus.active)
    return list(session.exec(query.order_by(col(Reward.cost), col(Reward.name))))


# --- redeeming ---------------------------------------------------------------------------------------
def redemption_by_key(session: Session, idempotency_key: str) -> Redemption | None:
    """The redemption made with this idempotency key, if any."""
    query = select(Redemption).where(Redemption.idempotency_key == idempotency_key)
    return session.exec(query.execution_options(populate_existing=True)).first()


def _repeated(found: Redemption, reward_id: int, profile_id: str) -> Redemption:
    if (found.reward_id, found.profile_id) != (reward_id, profile_id):
        raise RedemptionRefused("key_reused", "This idempotency key was already used for another redemption.")
    return found


def _refusal(
    session: Session, program: LoyaltyProgram, reward: Reward, member: MemberState, now: datetime
) -> RedemptionRefused | None:
    """Why the member cannot redeem the reward now (None: they can)."""
    assert program.id is not None
    if reward.status == RewardStatus.archived:
        return RedemptionRefused("archived", f"Reward {reward.name!r} is no longer in the catalogue.")
    valid_from, valid_until = aware(reward.valid_from), aware(reward.valid_until)
    if valid_from is not None and now < valid_from:
        return RedemptionRefused(
            "not_valid_yet", f"Reward {reward.name!r} can be redeemed from {valid_from:%Y-%m-%d %H:%M} UTC."
        )
    if valid_until is not None and now >= valid_until:
        return RedemptionRefused(
            "expired", f"Reward {reward.name!r} could be redeemed until {valid_until:%Y-%m-%d %H:%M} UTC."
        )
    if reward.min_tier_id is not None:
        ladder = tiers.program_tiers(session, program.id)
        if tiers.rank(ladder, member.tier_id) < tiers.rank(ladder, reward.min_tier_id):
            needed = next((t.name for t in ladder if t.id == reward.min_tier_id), "a higher tier")
            return RedemptionRefused(
                "tier_required", f"Reward {reward.name!r} needs tier {needed!r} or above."
            )
    if reward.stock is not None and reward.stock <= 0:
        return RedemptionRefused("out_of_stock", f"Reward {reward.name!r} is out of stock.")
    if reward.per_profile_limit is not None:
        held = session.connection().execute(
            sa.select(sa.func.count())
            .select_from(Redemption)
            .where(
                col(Redemption.reward_id) == reward.id,
                col(Redemption.profile_id) == member.profile_id,
                col(Redemption.status) != RedemptionStatus.cancelled,
            )
        )
        if int(held.scalar() or 0) >= reward.per_profile_limit:
            return RedemptionRefused(
                "limit_reached",
                f"Reward {reward.name!r} can be redeemed {reward.per_profile_limit} time(s) per member.",
            )
    if member.balance < reward.cost:
        return RedemptionRefused(
            "insufficient_points",
            f"Reward {reward.name!r} costs {reward.cost} {program.currency}; the balance is {member.balance}.",
        )
    return None


def redeem(
    session: Session,
    program: LoyaltyProgram,
    reward_id: int,
    profile_id: str,
    actor: str,
    *,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> Redemption:
    """Redeem a reward for a member: the voucher issued, its cost taken, one unit of stock gone.

    :class:`RedemptionRefused` (with its ``code``) when the member cannot have it now;
    :class:`RewardNotFound` for an unknown reward. Repeating an ``idempotency_key`` returns the
    redemption it made, taking nothing more.
    """
    assert program.id is not None
    program_id = program.id
    now = now or utcnow()
    if idempotency_key is not None and (found := redemption_by_key(session, idempotency_key)) is not None:
        return _repeated(found, reward_id, profile_id)
    if program.status == ProgramStatus.archived:
        raise RedemptionRefused("archived", f"Program {program.name!r} is archived: nothing can be redeemed.")
    # Lock order: the member, then the reward (cancelling takes them in the same order).
    members = lock_members(session, program, [profile_id], create=False)
    member = members.get(profile_id)
    if member is None:
        raise RedemptionRefused("not_a_member", f"This profile is not a member of {program.name!r} yet.")
    if idempotency_key is not None and (found := redemption_by_key(session, idempotency_key)) is not None:
        return _repeated(found, reward_id, profile_id)  # a concurrent call with the key committed first
    reward = _locked_reward(session, program.id, reward_id)
    moved = tiers.roll_over(session, program, member, now)  # a tier period that ended sets today's tier
    refusal = _refusal(session, program, reward, member, now)
    if refusal is not None:
        raise refusal
    expires = now + timedelta(days=reward.voucher_days) if reward.voucher_days else None

    def make(code: str) -> Redemption:
        return Redemption(program_id=program_id, reward_id=reward_id, profile_id=profile_id, cost=reward.cost,
                          code=code, idempotency_key=idempotency_key, actor=actor, created_at=now,
                          expires_at=expires)  # fmt: skip

    try:
        redemption = _insert_with_code(session, make, code_prefix(reward.name) or program.key.upper()[:6])
    except LoyaltyError:
        if idempotency_key is not None and (found := redemption_by_key(session, idempotency_key)) is not None:
            return _repeated(found, reward_id, profile_id)  # the key was taken for another member meanwhile
        raise
    if reward.stock is not None:
        reward.stock -= 1
    reward.issued += 1
    reward.updated_at = now
    session.add(reward)
    posting = Posting(profile_id=profile_id, points=-reward.cost, kind=EntryKind.redeem,
                      key=f"redeem:{redemption.id}", redemption_id=redemption.id, actor=actor, reason=reward.name,
                      details={"reward_id": reward_id, "code": redemption.code}, occurred_at=now)  # fmt: skip
    try:
        posted = post(session, program, [posting], members=members, now=now)
    except InsufficientPoints as exc:  # checked above under the lock: only a bug gets here
        raise RedemptionRefused("insufficient_points", str(exc)) from exc
    if moved is not None:
        posted.tier_moves.insert(0, moved)
    session.flush()
    events.record(session, program, posted)
    properties = {"program": program.key, "program_id": program.id, "reward": reward.name, "reward_id": reward_id,
                  "redemption_id": redemption.id, "code": redemption.code, "cost": reward.cost,
                  "expires_at": expires.isoformat() if expires else None}  # fmt: skip
    events.emit(session, [events.event_row(events.REWARD_REDEEMED, profile_id, properties, now)])
    return redemption


def _locked_redemption(session: Session, **where: Any) -> Redemption:
    query = select(Redemption).filter_by(**where).with_for_update()
    found = session.exec(query.execution_options(populate_existing=True)).first()
    if found is None:
        what = f"voucher {where['code']!r}" if "code" in where else f"redemption {where.get('id')}"
        raise RedemptionNotFound(f"There is no {what}.")
    return found


def _unusable(redemption: Redemption, now: datetime) -> RedemptionRefused | None:
    if redemption.status == RedemptionStatus.used:
        used = aware(redemption.used_at)
        return RedemptionRefused(
            "used", f"Voucher {redemption.code} was already used ({used:%Y-%m-%d %H:%M} UTC)."
        )
    if redemption.status == RedemptionStatus.cancelled:
        return RedemptionRefused("cancelled", f"Voucher {redemption.code} was cancelled.")
    expires = aware(redemption.expires_at)
    if expires is not None and now >= expires:
        return RedemptionRefused(
            "expired", f"Voucher {redemption.code} expired on {expires:%Y-%m-%d %H:%M} UTC."
        )
    return None


def use_voucher(
    session: Session, code: str, actor: str, order_id: str | None = None, *, now: datetime | None = None
) -> Redemption:
    """Mark a voucher used (at the till or online); :class:`RedemptionRefused` if it is used,
    cancelled or expired, :class:`RedemptionNotFound` for an unknown code."""
    now = now or utcnow()
    redemption = _locked_redemption(session, code=code.strip().upper())
    refusal = _unusable(redemption, now)
    if refusal is not None:
        raise refusal
    redemption.status, redemption.used_at = RedemptionStatus.used, now
    session.add(redemption)
    session.flush()
    program = session.get(LoyaltyProgram, redemption.program_id)
    reward = session.get(Reward, redemption.reward_id)
    properties = {"program": program.key if program else None, "program_id": redemption.program_id,
                  "reward": reward.name if reward else None, "reward_id": redemption.reward_id,
                  "redemption_id": redemption.id, "code": redemption.code, "order_id": order_id, "by": actor}  # fmt: skip
    events.emit(session, [events.event_row(events.VOUCHER_USED, redemption.profile_id, properties, now)])
    return redemption


def cancel_redemption(
    session: Session, redemption_id: int, actor: str, *, now: datetime | None = None
) -> Redemption:
    """Cancel an unused voucher (expired ones too): its points and its unit of stock come back.

    :class:`RedemptionRefused` for a voucher used or already cancelled.
    """
    now = now or utcnow()
    first = session.get(Redemption, redemption_id)
    if first is None:
        raise RedemptionNotFound(f"There is no redemption {redemption_id}.")
    program = session.get(LoyaltyProgram, first.program_id)
    assert program is not None and program.id is not None
    members = lock_members(session, program, [first.profile_id], create=False)
    reward = _locked_reward(session, None, first.reward_id)
    redemption = _locked_redemption(session, id=redemption_id)
    if redemption.status != RedemptionStatus.issued:
        refusal = _unusable(redemption, now)
        assert refusal is not None
        raise refusal
    redemption.status, redemption.cancelled_at = RedemptionStatus.cancelled, now
    session.add(redemption)
    if reward.stock is not None:
        reward.stock += 1
    reward.issued = max(0, reward.issued - 1)
    reward.updated_at = now
    session.add(reward)
    posting = Posting(profile_id=redemption.profile_id, points=redemption.cost, kind=EntryKind.refund,
                      key=f"refund:{redemption.id}", redemption_id=redemption.id, actor=actor,
                      reason=f"{reward.name} cancelled", details={"reward_id": reward.id, "code": redemption.code},
                      occurred_at=now)  # fmt: skip
    posted = post(session, program, [posting], members=members, now=now)
    session.flush()
    events.record(session, program, posted)
    return redemption


def get_redemption(session: Session, redemption_id: int) -> Redemption:
    """The redemption, or :class:`RedemptionNotFound`."""
    found = session.get(Redemption, redemption_id)
    if found is None:
        raise RedemptionNotFound(f"There is no redemption {redemption_id}.")
    return found


def redemptions_of(session: Session, profile_id: str, program_id: int | None = None) -> list[Redemption]:
    """A profile's redemptions (in one program, or all), newest first."""
    query = select(Redemption).where(Redemption.profile_id == profile_id)
    if program_id is not None:
        query = query.where(Redemption.program_id == program_id)
    return list(session.exec(query.order_by(col(Redemption.id).desc())))
