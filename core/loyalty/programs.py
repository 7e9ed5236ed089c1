"""Loyalty programs, their tiers and earning rules: checked, created and changed by marketers.

Rules are written in the segment rule language: ``where`` filters the event's properties, and
``profile_rule`` is a segment rule the profile must match (both checked here, with every problem
and its place reported at once).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlmodel import Session, col, select

from core.db.base import utcnow
from core.loyalty.ledger import LoyaltyError
from core.loyalty.models import (
    EarningRule,
    ExpiryPolicy,
    LoyaltyMember,
    LoyaltyProgram,
    ProgramStatus,
    Rounding,
    RuleKind,
    RuleStatus,
    Tier,
    TierBasis,
)
from core.loyalty.standing import FIELD_NAMES
from core.loyalty.tiers import forget_tiers
from core.plugin_api import SegmentConditionType
from core.segments import rules as r
from core.segments.service import check_rule

KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MONTH_DAY = re.compile(r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")


class ProgramNotFound(LookupError):
    """No program has this id."""


class RuleNotFound(LookupError):
    """No earning rule has this id in the program."""


class TierNotFound(LookupError):
    """No tier has this id in the program."""


class ProgramIn(BaseModel):
    """A program's settings, as a marketer gives them."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(description="Lowercase name used in templates and pass fields, e.g. club.")
    name: str = Field(min_length=1, max_length=200)
    currency: str = Field(default="points", min_length=1, max_length=40)
    brand: str | None = Field(default=None, max_length=100)
    description: str = Field(default="", max_length=2000)
    rounding: Rounding = Rounding.down
    expiry_policy: ExpiryPolicy = ExpiryPolicy.never
    expiry_months: int = Field(default=12, ge=0, le=120)
    expiry_day: str = "12-31"
    tier_basis: TierBasis = TierBasis.points
    qualifying_months: int = Field(default=12, ge=1, le=60)
    period_anchor: date = date(2026, 1, 1)
    amount_property: str = Field(default="revenue", min_length=1, max_length=200)
    refund_events: list[str] = Field(
        default_factory=lambda: ["Order Refunded", "Order Cancelled"], max_length=10
    )
    referral_event: str = Field(default="Signed Up", min_length=1, max_length=200)
    purchase_event: str = Field(default="Order Completed", min_length=1, max_length=200)
    referrer_points: int = Field(default=0, ge=0, le=1_000_000)
    referee_points: int = Field(default=0, ge=0, le=1_000_000)

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not KEY.match(value):
            raise ValueError("use lowercase letters, digits and _ (starting with a letter), at most 40")
        if value in FIELD_NAMES:  # templates read the first program's fields at the top of `loyalty`
            raise ValueError(f"{value!r} names a loyalty field in templates: choose another key")
        return value

    @field_validator("expiry_day")
    @classmethod
    def _month_day(cls, value: str) -> str:
        if not MONTH_DAY.match(value):
            raise ValueError("give the day as MM-DD, e.g. 12-31")
        return value

    @model_validator(mode="after")
    def _rolling_needs_months(self) -> ProgramIn:
        if self.expiry_policy == ExpiryPolicy.rolling and self.expiry_months < 1:
            raise ValueError("rolling expiry needs expiry_months of at least 1")
        return self


def _program_values(body: ProgramIn) -> dict[str, Any]:
    values = body.model_dump()
    values["period_anchor"] = datetime.combine(body.period_anchor, datetime.min.time(), UTC)
    return values


def _check_unique(session: Session, body: ProgramIn, program_id: int | None) -> None:
    for name in ("key", "name"):
        found = session.exec(
            select(LoyaltyProgram).where(getattr(LoyaltyProgram, name) == getattr(body, name))
        ).first()
        if found is not None and found.id != program_id:
            raise LoyaltyError(f"A program with the {name} {getattr(body, name)!r} already exists.")


def create_program(session: Session, body: ProgramIn, actor: str) -> LoyaltyProgram:
    """A new active program; :class:`LoyaltyError` if its key or name is taken."""
    _check_unique(session, body, None)
    program = LoyaltyProgram(**_program_values(body), created_by=actor, updated_by=actor)
    session.add(program)
    session.flush()
    # Rules only earn on events from their activation on: no need to read the history before.
    from core.loyalty.engine import start_cursors  # the engine imports this module

    start_cursors(session)
    return program


def update_program(session: Session, program_id: int, body: ProgramIn, actor: str) -> LoyaltyProgram:
    """Change a program's settings (its key stays: templates and passes use it)."""
    program = get_program(session, program_id)
    if body.key != program.key:
        raise LoyaltyError("A program's key cannot change: templates and passes use it.")
    _check_unique(session, body, program_id)
    for name, value in _program_values(body).items():
        setattr(program, name, value)
    program.updated_at, program.updated_by = utcnow(), actor
    session.add(program)
    return program


def archive_program(session: Session, program_id: int, actor: str) -> LoyaltyProgram:
    """Retire a program: it stops earning and redeeming; its ledger stays readable."""
    program = get_program(session, program_id)
    program.status = ProgramStatus.archived
    program.updated_at, program.updated_by = utcnow(), actor
    session.add(program)
    return program


def get_program(session: Session, program_id: int) -> LoyaltyProgram:
    """The program, or :class:`ProgramNotFound`."""
    program = session.get(LoyaltyProgram, program_id)
    if program is None:
        raise ProgramNotFound(f"No loyalty program {program_id}.")
    return program


def list_programs(session: Session, include_archived: bool = False) -> list[LoyaltyProgram]:
    """The tenant's programs, oldest first."""
    query = select(LoyaltyProgram)
    if not include_archived:
        query = query.where(LoyaltyProgram.status == ProgramStatus.active)
    return list(session.exec(query.order_by(col(LoyaltyProgram.id))))


# --- tiers ------------------------------------------------------------------------------------------
class TierIn(BaseModel):
    """A tier: reached at ``threshold`` (points or spend in a period), earning ``multiplier`` times."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    threshold: float = Field(ge=0)
    multiplier: float = Field(default=1.0, gt=0, le=100)
    benefits: str = Field(default="", max_length=2000)


def list_tiers(session: Session, program_id: int) -> list[Tier]:
    """The program's tiers, lowest first."""
    query = select(Tier).where(Tier.program_id == program_id)
    return list(session.exec(query.order_by(col(Tier.threshold), col(Tier.id))))


def _check_tier(session: Session, program_id: int, body: TierIn, tier_id: int | None) -> None:
    for tier in list_tiers(session, program_id):
        if tier.id == tier_id:
            continue
        if tier.name == body.name:
            raise LoyaltyError(f"The program already has a tier named {body.name!r}.")
        if tier.threshold == body.threshold:
            raise LoyaltyError(f"Tier {tier.name!r} already starts at {body.threshold:g}.")


def add_tier(session: Session, program_id: int, body: TierIn) -> Tier:
    """A new tier; members reaching it move up as their next points arrive."""
    get_program(session, program_id)
    _check_tier(session, program_id, body, None)
    tier = Tier(program_id=program_id, **body.model_dump())
    session.add(tier)
    session.flush()
    forget_tiers(session)
    return tier


def update_tier(session: Session, program_id: int, tier_id: int, body: TierIn) -> Tier:
    """Change a tier's name, threshold, multiplier or benefits."""
    tier = session.get(Tier, tier_id)
    if tier is None or tier.program_id != program_id:
        raise TierNotFound(f"No tier {tier_id} in program {program_id}.")
    _check_tier(session, program_id, body, tier_id)
    for name, value in body.model_dump().items():
        setattr(tier, name, value)
    session.add(tier)
    forget_tiers(session)
    return tier


def delete_tier(session: Session, program_id: int, tier_id: int) -> None:
    """Remove a tier nobody holds; :class:`LoyaltyError` while members hold it."""
    tier = session.get(Tier, tier_id)
    if tier is None or tier.program_id != program_id:
        raise TierNotFound(f"No tier {tier_id} in program {program_id}.")
    holder = session.exec(select(LoyaltyMember).where(LoyaltyMember.tier_id == tier_id).limit(1)).first()
    if holder is not None:
        raise LoyaltyError(f"Members hold tier {tier.name!r}: it cannot be removed.")
    session.delete(tier)
    forget_tiers(session)


# --- earning rules ---------------------------------------------------------------------------------
class RuleIn(BaseModel):
    """An earning rule as a marketer writes it (see :class:`~core.loyalty.models.EarningRule`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    event: str = Field(min_length=1, max_length=200)
    where: list[dict[str, Any]] = Field(default_factory=list, max_length=50)
    profile_rule: dict[str, Any] | None = None
    kind: RuleKind = RuleKind.fixed
    points: float = Field(gt=0, le=1_000_000)
    amount_property: str | None = Field(default=None, max_length=200)
    tier_multiplier: bool = True
    cap_per_day: int | None = Field(default=None, ge=1)
    cap_per_month: int | None = Field(default=None, ge=1)
    starts_at: datetime | None = None
    ends_at: datetime | None = None

    @model_validator(mode="after")
    def _period(self) -> RuleIn:
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must come after starts_at")
        return self


@dataclass(frozen=True)
class CompiledRule:
    """An earning rule with its filters and profile condition parsed."""

    rule: EarningRule
    where: tuple[r.Trait, ...]
    profile: r.Rule | None


def parse_conditions(
    session: Session, rule: EarningRule | RuleIn, conditions: Mapping[str, SegmentConditionType]
) -> tuple[tuple[r.Trait, ...], r.Rule | None]:
    """The rule's parsed ``where`` filters and profile condition.

    :class:`~core.segments.rules.RuleError` lists every problem, at ``where[i]...`` or
    ``profile_rule...``.
    """
    problems: list[r.Problem] = []
    where: tuple[r.Trait, ...] = ()
    profile: r.Rule | None = None
    try:
        parsed = r.parse_rule({"type": "event", "event": rule.event, "where": rule.where})
        assert isinstance(parsed, r.Behaviour)
        where = parsed.where
    except r.RuleError as exc:
        problems += exc.problems
    if rule.profile_rule is not None:
        try:
            profile = check_rule(session, rule.profile_rule, conditions)
        except r.RuleError as exc:
            problems += [r.Problem(f"profile_rule.{p.path}" if p.path else "profile_rule", p.message)
                         for p in exc.problems]  # fmt: skip
    if problems:
        raise r.RuleError(problems)
    return where, profile


def compile_rule(
    session: Session, rule: EarningRule, conditions: Mapping[str, SegmentConditionType]
) -> CompiledRule:
    """The stored rule, ready to apply."""
    return CompiledRule(rule, *parse_conditions(session, rule, conditions))


def _check_rule(
    session: Session, program: LoyaltyProgram, body: RuleIn, rule_id: int | None,
    conditions: Mapping[str, SegmentConditionType],
) -> None:  # fmt: skip
    parse_conditions(session, body, conditions)
    if body.kind == RuleKind.per_amount and not (body.amount_property or program.amount_property):
        raise LoyaltyError("A per-amount rule needs the property holding the amount.")
    query = select(EarningRule).where(EarningRule.program_id == program.id, EarningRule.name == body.name)
    found = session.exec(query).first()
    if found is not None and found.id != rule_id:
        raise LoyaltyError(f"The program already has a rule named {body.name!r}.")


def create_rule(
    session: Session,
    program_id: int,
    body: RuleIn,
    actor: str,
    conditions: Mapping[str, SegmentConditionType],
) -> EarningRule:
    """A new draft rule; :class:`LoyaltyError` or :class:`~core.segments.rules.RuleError` if invalid."""
    program = get_program(session, program_id)
    _check_rule(session, program, body, None, conditions)
    rule = EarningRule(program_id=program_id, **body.model_dump(), created_by=actor, updated_by=actor)
    session.add(rule)
    session.flush()
    return rule


def get_rule(session: Session, program_id: int, rule_id: int) -> EarningRule:
    """The rule, or :class:`RuleNotFound`."""
    rule = session.get(EarningRule, rule_id)
    if rule is None or rule.program_id != program_id:
        raise RuleNotFound(f"No earning rule {rule_id} in program {program_id}.")
    return rule


def update_rule(
    session: Session, program_id: int, rule_id: int, body: RuleIn, actor: str,
    conditions: Mapping[str, SegmentConditionType],
) -> EarningRule:  # fmt: skip
    """Change a rule (an active one applies the change to events from now on); ended rules stay."""
    rule = get_rule(session, program_id, rule_id)
    if rule.status == RuleStatus.ended:
        raise LoyaltyError(f"Rule {rule.name!r} has ended: copy it into a new rule instead.")
    _check_rule(session, get_program(session, program_id), body, rule_id, conditions)
    for name, value in body.model_dump().items():
        setattr(rule, name, value)
    rule.updated_at, rule.updated_by = utcnow(), actor
    session.add(rule)
    return rule


def set_rule_status(
    session: Session, program_id: int, rule_id: int, status: RuleStatus, actor: str
) -> EarningRule:
    """Activate a draft (it applies to events from now on) or end a rule (for good)."""
    rule = get_rule(session, program_id, rule_id)
    allowed = {
        RuleStatus.active: (RuleStatus.draft,),
        RuleStatus.ended: (RuleStatus.draft, RuleStatus.active),
    }
    if rule.status not in allowed.get(status, ()):
        raise LoyaltyError(f"Rule {rule.name!r} is {rule.status}: it cannot become {status}.")
    rule.status = status
    if status == RuleStatus.active:
        rule.activated_at = utcnow()
    rule.updated_at, rule.updated_by = utcnow(), actor
    session.add(rule)
    return rule


def list_rules(session: Session, program_id: int, status: RuleStatus | None = None) -> list[EarningRule]:
    """The program's rules, oldest first (only those of ``status`` if given)."""
    query = select(EarningRule).where(EarningRule.program_id == program_id)
    if status is not None:
        query = query.where(EarningRule.status == status)
    return list(session.exec(query.order_by(col(EarningRule.id))))
