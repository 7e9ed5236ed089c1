"""Tables of loyalty (tenant database): programs and their rules, tiers, rewards, offers and
challenges; the ledger every balance is derived from; members, redemptions, coupons, referrals.

Balances are never stored alone: :class:`LoyaltyMember` caches what the member's ledger entries
add up to, written in the same transaction as the entries (and checked against them by tests).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field

from core.db.base import TenantModel, utcnow


class ProgramStatus(enum.StrEnum):
    """A program runs (earning, redeeming) or is retired (read only)."""

    active = "active"
    archived = "archived"


class Rounding(enum.StrEnum):
    """How fractional points (per amount, multipliers) become whole points."""

    down = "down"
    nearest = "nearest"
    up = "up"


class ExpiryPolicy(enum.StrEnum):
    """When earned points expire: never, ``expiry_months`` after earning, or on a fixed day."""

    never = "never"
    rolling = "rolling"
    fixed_date = "fixed_date"


class TierBasis(enum.StrEnum):
    """What qualifies a member for a tier over the qualifying period."""

    points = "points"
    spend = "spend"


class LoyaltyProgram(TenantModel, table=True):
    """A loyalty program: its currency, rounding, expiry policy, tier qualification and referral.

    ``key`` names the program in templates (``{{ loyalty.<key>.balance }}``), events and pass
    fields. Fixed-date expiry: points expire on the first ``expiry_day`` (``MM-DD``) that is at
    least ``expiry_months`` after they were earned. Tier periods are ``qualifying_months`` long,
    counted from ``period_anchor``.
    """

    __tablename__ = "loyalty_program"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=40, unique=True)
    name: str = Field(max_length=200, unique=True)
    currency: str = Field(default="points", max_length=40)
    brand: str | None = Field(default=None, max_length=100)
    description: str = Field(default="", max_length=2000)
    status: ProgramStatus = Field(default=ProgramStatus.active, max_length=10)
    rounding: Rounding = Field(default=Rounding.down, max_length=10)
    expiry_policy: ExpiryPolicy = Field(default=ExpiryPolicy.never, max_length=12)
    expiry_months: int = 12
    expiry_day: str = Field(default="12-31", max_length=5)
    tier_basis: TierBasis = Field(default=TierBasis.points, max_length=10)
    qualifying_months: int = 12
    period_anchor: datetime = Field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    amount_property: str = Field(default="revenue", max_length=200)
    refund_events: list[str] = Field(
        default_factory=lambda: ["Order Refunded", "Order Cancelled"], sa_column=Column(JSON, nullable=False)
    )
    referral_event: str = Field(default="Signed Up", max_length=200)
    purchase_event: str = Field(default="Order Completed", max_length=200)
    referrer_points: int = 0
    referee_points: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str = Field(default="", max_length=320)
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: str = Field(default="", max_length=320)


class Tier(TenantModel, table=True):
    """A status level: reached at ``threshold`` (points or spend in a qualifying period)."""

    __tablename__ = "loyalty_tier"
    __table_args__ = (UniqueConstraint("program_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    program_id: int = Field(index=True)
    name: str = Field(max_length=100)
    threshold: float = 0
    multiplier: float = 1.0
    benefits: str = Field(default="", max_length=2000)


class RuleStatus(enum.StrEnum):
    """An earning rule's life: edited, applying to events as they arrive, over."""

    draft = "draft"
    active = "active"
    ended = "ended"


class RuleKind(enum.StrEnum):
    """What a rule earns: fixed points, points per unit of an amount, or a multiplier of the rest."""

    fixed = "fixed"
    per_amount = "per_amount"
    multiplier = "multiplier"


class EarningRule(TenantModel, table=True):
    """Points for an event: on ``event`` where ``where`` (property filters of the segment rule
    language) holds and the profile matches ``profile_rule`` (a segment rule), within
    ``starts_at``-``ends_at``.

    ``points`` is the fixed points, the points per unit of ``amount_property``, or the factor of a
    multiplier rule (which multiplies what the other rules earn for the same event). Caps bound
    what the rule earns one member per day and per month, in the tenant's zone.
    """

    __tablename__ = "loyalty_rule"
    __table_args__ = (UniqueConstraint("program_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    program_id: int = Field(index=True)
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=2000)
    status: RuleStatus = Field(default=RuleStatus.draft, max_length=10)
    event: str = Field(max_length=200)
    where: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    profile_rule: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    kind: RuleKind = Field(default=RuleKind.fixed, max_length=12)
    points: float = 0
    amount_property: str | None = Field(default=None, max_length=200)
    tier_multiplier: bool = True
    cap_per_day: int | None = None
    cap_per_month: int | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    activated_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str = Field(default="", max_length=320)
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: str = Field(default="", max_length=320)


class EntryKind(enum.StrEnum):
    """Why a balance changed."""

    earn = "earn"  # an earning rule, for an event
    adjust = "adjust"  # by hand, by whom and why
    redeem = "redeem"  # a reward redeemed
    refund = "refund"  # a redemption cancelled: its points come back
    expire = "expire"  # the expiry policy
    reverse = "reverse"  # a refund or cancelled order takes back what its purchase earned
    challenge = "challenge"  # a challenge completed
    referral = "referral"  # a referral qualified (to the referrer and to the referee)


class LedgerEntry(TenantModel, table=True):
    """One immutable change of one member's balance, with its cause.

    ``key`` makes the change idempotent (``earn:<rule>:<event message id>``, ...): recording the
    same cause twice records it once. ``qualifying`` is what the entry adds to tier qualification
    (points or spend); ``expires_at`` is when earned points lapse (points are spent oldest first).
    """

    __tablename__ = "loyalty_ledger"
    __table_args__ = (
        Index("ix_loyalty_ledger_member", "program_id", "profile_id", "id"),
        Index("ix_loyalty_ledger_order", "program_id", "order_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    program_id: int
    profile_id: str = Field(max_length=40)
    points: int
    kind: EntryKind = Field(max_length=10)
    key: str = Field(max_length=300, unique=True)
    qualifying: float = 0
    rule_id: int | None = None
    event_id: int | None = None
    order_id: str | None = Field(default=None, max_length=200)
    reverses_id: int | None = None
    redemption_id: int | None = None
    actor: str | None = Field(default=None, max_length=320)
    reason: str = Field(default="", max_length=500)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    occurred_at: datetime = Field(default_factory=utcnow)
    recorded_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None


class LoyaltyMember(TenantModel, table=True):
    """One profile in one program: the sums of its ledger, its tier, its referral code.

    ``period`` is the tier period ``qualifying`` counts in (0 is the one starting at the program's
    ``period_anchor``).
    """

    __tablename__ = "loyalty_member"

    program_id: int = Field(primary_key=True)
    profile_id: str = Field(primary_key=True, max_length=40)
    balance: int = 0
    earned: int = 0
    redeemed: int = 0
    expired: int = 0
    tier_id: int | None = None
    tier_since: datetime | None = None
    period: int = 0
    qualifying: float = 0
    referral_code: str = Field(max_length=20, unique=True)
    joined_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class RewardStatus(enum.StrEnum):
    """A reward can be redeemed, or is withdrawn from the catalogue."""

    active = "active"
    archived = "archived"


class Reward(TenantModel, table=True):
    """An item of the catalogue: its cost, stock left (None: unlimited), validity, limit per member.

    A redemption issues a voucher with a unique code, valid ``voucher_days`` (None: no end).
    """

    __tablename__ = "loyalty_reward"
    __table_args__ = (UniqueConstraint("program_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    program_id: int = Field(index=True)
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=2000)
    cost: int
    stock: int | None = None
    issued: int = 0
    per_profile_limit: int | None = None
    min_tier_id: int | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    voucher_days: int | None = None
    status: RewardStatus = Field(default=RewardStatus.active, max_length=10)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class RedemptionStatus(enum.StrEnum):
    """A voucher's life."""

    issued = "issued"
    used = "used"
    cancelled = "cancelled"


class Redemption(TenantModel, table=True):
    """A reward redeemed by a member: the voucher, its ledger entry, who did it."""

    __tablename__ = "loyalty_redemption"
    __table_args__ = (Index("ix_loyalty_redemption_member", "reward_id", "profile_id"),)

    id: int | None = Field(default=None, primary_key=True)
    program_id: int
    reward_id: int
    profile_id: str = Field(max_length=40, index=True)
    cost: int
    code: str = Field(max_length=40, unique=True)
    status: RedemptionStatus = Field(default=RedemptionStatus.issued, max_length=10)
    idempotency_key: str | None = Field(default=None, max_length=200, unique=True)
    actor: str = Field(default="", max_length=320)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None
    used_at: datetime | None = None
    cancelled_at: datetime | None = None


class OfferStatus(enum.StrEnum):
    """An offer can be assigned and used, or is withdrawn."""

    active = "active"
    archived = "archived"


class Offer(TenantModel, table=True):
    """A personal offer or coupon (``value`` says what it gives: "20% off", "free coffee").

    Each assignment gets its own code and may be used ``max_uses`` times within its validity
    (``valid_until``, or ``valid_days`` after assignment, whichever comes first).
    """

    __tablename__ = "loyalty_offer"

    id: int | None = Field(default=None, primary_key=True)
    program_id: int | None = Field(default=None, index=True)
    name: str = Field(max_length=200, unique=True)
    description: str = Field(default="", max_length=2000)
    value: str = Field(default="", max_length=200)
    code_prefix: str = Field(default="", max_length=10)
    max_uses: int = 1
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    valid_days: int | None = None
    status: OfferStatus = Field(default=OfferStatus.active, max_length=10)
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str = Field(default="", max_length=320)


class CouponStatus(enum.StrEnum):
    """An assigned coupon's life."""

    active = "active"
    used = "used"
    revoked = "revoked"


class Coupon(TenantModel, table=True):
    """An offer assigned to one profile: its code, validity and uses."""

    __tablename__ = "loyalty_coupon"
    __table_args__ = (UniqueConstraint("offer_id", "profile_id"),)

    id: int | None = Field(default=None, primary_key=True)
    offer_id: int = Field(index=True)
    profile_id: str = Field(max_length=40, index=True)
    code: str = Field(max_length=40, unique=True)
    status: CouponStatus = Field(default=CouponStatus.active, max_length=10)
    uses: int = 0
    max_uses: int = 1
    assigned_at: datetime = Field(default_factory=utcnow)
    assigned_by: str = Field(default="", max_length=320)
    valid_until: datetime | None = None


class CouponUse(TenantModel, table=True):
    """One use of a coupon at the till (or online): when, by whom, for which order."""

    __tablename__ = "loyalty_coupon_use"

    id: int | None = Field(default=None, primary_key=True)
    coupon_id: int = Field(index=True)
    idempotency_key: str | None = Field(default=None, max_length=200, unique=True)
    order_id: str | None = Field(default=None, max_length=200)
    actor: str = Field(default="", max_length=320)
    used_at: datetime = Field(default_factory=utcnow)


class ChallengeGoal(enum.StrEnum):
    """What a challenge counts: matching events, or distinct values of one of their properties."""

    events = "events"
    distinct = "distinct"


class Challenge(TenantModel, table=True):
    """A challenge ("3 purchases in 30 days", "try 2 services") and the badge it awards.

    Progress counts ``event`` events where ``where`` holds, within the last ``window_days`` (None:
    since the challenge started); completing it awards ``badge`` and ``points``.
    """

    __tablename__ = "loyalty_challenge"
    __table_args__ = (UniqueConstraint("program_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    program_id: int = Field(index=True)
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=2000)
    badge: str = Field(max_length=100)
    event: str = Field(max_length=200)
    where: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    goal: ChallengeGoal = Field(default=ChallengeGoal.events, max_length=10)
    property: str | None = Field(default=None, max_length=200)
    target: int = 1
    window_days: int | None = None
    points: int = 0
    status: RuleStatus = Field(default=RuleStatus.draft, max_length=10)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    activated_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class ChallengeProgress(TenantModel, table=True):
    """One member's progress in one challenge; ``completed_at`` set once the badge is won."""

    __tablename__ = "loyalty_challenge_progress"

    challenge_id: int = Field(primary_key=True)
    profile_id: str = Field(primary_key=True, max_length=40)
    progress: int = 0
    target: int = 1
    seen: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    completed_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class ReferralStatus(enum.StrEnum):
    """A referral waits for the referee's first purchase, then qualifies or is rejected."""

    pending = "pending"
    qualified = "qualified"
    rejected = "rejected"


class Referral(TenantModel, table=True):
    """A referee who came with a member's referral code; rewarded once their first purchase comes."""

    __tablename__ = "loyalty_referral"
    __table_args__ = (UniqueConstraint("program_id", "referee_id"),)

    id: int | None = Field(default=None, primary_key=True)
    program_id: int
    referrer_id: str = Field(max_length=40, index=True)
    referee_id: str = Field(max_length=40)
    code: str = Field(max_length=20)
    status: ReferralStatus = Field(default=ReferralStatus.pending, max_length=10)
    reason: str = Field(default="", max_length=300)
    created_at: datetime = Field(default_factory=utcnow)
    decided_at: datetime | None = None
    event_id: int | None = None


class AppliedEvent(TenantModel, table=True):
    """An event a program has been applied to: decided once, even when the stream shows it again.

    (The stream re-reads its most recent rows; without this, a profile that changed meanwhile
    could make the same event earn differently the second time.)
    """

    __tablename__ = "loyalty_applied"

    program_id: int = Field(primary_key=True)
    event_id: int = Field(primary_key=True)
