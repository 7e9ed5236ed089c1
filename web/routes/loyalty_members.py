"""The Loyalty card of the 360 view, and what an agent at the counter does on it.

For each active program the card shows the profile's standing (balance, tier and the way to the
next one, next reward, badges, referral code and referrals), challenge progress, vouchers and the
ledger (20 entries a page, older ones fetched by HTMX); below, the profile's coupons. Reading it
needs ``read_data``; the actions (redeem a reward, use a voucher or coupon, cancel an unused
voucher, add or take points, apply a referral code) need ``write_marketing``, are audited as the
JSON API audits them (``loyalty.redeem``, ``loyalty.voucher.use``, ``loyalty.coupon.use``,
``loyalty.redemption.cancel``, ``loyalty.adjust``, ``loyalty.referral.apply``) and answer with the
card again, saying what was done or why not.
"""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import Response
from sqlmodel import Session

from core.audit import service as audit
from core.db.base import utcnow
from core.db.engines import tenant_session
from core.loyalty import offers, programs, referrals, rewards, tiers
from core.loyalty.challenges import progress_of
from core.loyalty.events import tell_plugins
from core.loyalty.ledger import LoyaltyError, entries_of
from core.loyalty.members import adjust
from core.loyalty.models import (
    Challenge,
    ChallengeProgress,
    Coupon,
    EntryKind,
    LedgerEntry,
    LoyaltyMember,
    LoyaltyProgram,
    Offer,
    Redemption,
    RedemptionStatus,
    Referral,
    Reward,
)
from core.loyalty.standing import Standing, standings
from core.profiles.service import ProfileNotFound, get_profile
from core.segments.jobs import after_profiles_changed
from core.tenancy.roles import Permission
from web.auth import ControlDB, Principal, client_info, require
from web.csrf import verify_csrf
from web.loyalty_pages.access import program_or_404
from web.templating import render

router = APIRouter(prefix="/t/{tenant}/profiles/{profile_id}/loyalty", dependencies=[Depends(verify_csrf)])
Reader = Annotated[Principal, Depends(require(Permission.read_data))]
Marketer = Annotated[Principal, Depends(require(Permission.write_marketing))]

LEDGER_PAGE = 20
VOUCHERS_SHOWN = 10


@dataclass(frozen=True)
class Flash:
    """What the last action did (``ok``) or why it was refused (``error``)."""

    kind: str
    text: str


@dataclass(frozen=True)
class LedgerLine:
    """A ledger entry as the card lists it: its cause in words, and who made it."""

    entry: LedgerEntry
    cause: str
    who: str


@dataclass(frozen=True)
class RewardChoice:
    """A reward the agent may pick, with why the member cannot have it now (None: they can)."""

    reward: Reward
    refusal: str | None


@dataclass
class ProgramCard:
    """One program's part of the card (``standing`` None: the profile is not a member)."""

    program: LoyaltyProgram
    standing: Standing | None
    progress: int = 0  # percent of the way to the next tier
    challenges: list[tuple[Challenge, ChallengeProgress | None]] = field(default_factory=list)
    referrals: list[Referral] = field(default_factory=list)
    referred_by: Referral | None = None
    vouchers: list[tuple[Redemption, str]] = field(default_factory=list)
    ledger: list[LedgerLine] = field(default_factory=list)
    older: int | None = None  # the id older ledger entries come before
    choices: list[RewardChoice] = field(default_factory=list)


@dataclass
class MemberCard:
    """The whole Loyalty card of one profile."""

    profile_id: str
    programs: list[ProgramCard]
    coupons: list[tuple[Coupon, Offer]]
    flash: Flash | None = None
    key: str = field(default_factory=lambda: secrets.token_urlsafe(12))  # makes a double submit harmless


# --- reading ---------------------------------------------------------------------------------------
def cause_of(entry: LedgerEntry) -> str:
    """Why a ledger entry changed the balance, in words."""
    details = entry.details or {}
    event = f" · {details['event']}" if details.get("event") else ""
    code = f" · voucher {details['code']}" if details.get("code") else ""
    if entry.kind == EntryKind.earn:
        order = f" · order {entry.order_id}" if entry.order_id else ""
        return f"Rule “{entry.reason}”{event}{order}"
    if entry.kind == EntryKind.redeem:
        return f"Reward “{entry.reason}”{code}"
    if entry.kind == EntryKind.refund:
        return f"{entry.reason}{code}"
    if entry.kind == EntryKind.reverse:
        return f"Reversal of order {entry.order_id or '—'}{event}"
    if entry.kind == EntryKind.challenge and details.get("badge"):
        return f"{entry.reason} · badge {details['badge']}"
    return entry.reason or entry.kind.value


def ledger_lines(entries: list[LedgerEntry]) -> list[LedgerLine]:
    """The entries with their causes."""
    return [LedgerLine(e, cause_of(e), e.actor or "") for e in entries]


def _page(
    session: Session, program_id: int, profile_id: str, before: int | None
) -> tuple[list[LedgerLine], int | None]:
    """A page of the ledger, and the id to page on from (None: nothing older)."""
    found = entries_of(session, program_id, profile_id, LEDGER_PAGE + 1, before)
    shown = found[:LEDGER_PAGE]
    return ledger_lines(shown), (shown[-1].id if len(found) > LEDGER_PAGE else None)


def tier_progress(standing: Standing) -> int:
    """How far (percent) the member is on the way to the next tier (100 at the top)."""
    if standing.to_next_tier is None:
        return 100
    threshold = standing.qualifying + standing.to_next_tier
    return 100 if threshold <= 0 else max(0, min(100, int(100 * standing.qualifying / threshold)))


def _choices(
    session: Session, program: LoyaltyProgram, member: LoyaltyMember, held: Counter[int]
) -> list[RewardChoice]:
    """The catalogue, each reward with why the member cannot redeem it now (the service decides)."""
    assert program.id is not None
    now = utcnow()
    ladder = tiers.program_tiers(session, program.id)
    choices = []
    for reward in rewards.list_rewards(session, program.id):
        starts, ends = rewards.aware(reward.valid_from), rewards.aware(reward.valid_until)
        refusal = None
        if (starts and now < starts) or (ends and now >= ends):
            refusal = "not available now"
        elif reward.min_tier_id is not None and tiers.rank(ladder, member.tier_id) < tiers.rank(
            ladder, reward.min_tier_id
        ):
            refusal = "needs " + next((t.name for t in ladder if t.id == reward.min_tier_id), "a higher tier")
        elif reward.stock is not None and reward.stock <= 0:
            refusal = "out of stock"
        elif reward.per_profile_limit is not None and held[reward.id or 0] >= reward.per_profile_limit:
            refusal = "limit reached"
        elif member.balance < reward.cost:
            refusal = f"not enough {program.currency}"
        choices.append(RewardChoice(reward, refusal))
    return sorted(choices, key=lambda c: c.refusal is not None)


def _program_card(
    session: Session, program: LoyaltyProgram, standing: Standing | None, profile_id: str
) -> ProgramCard:
    assert program.id is not None
    card = ProgramCard(program, standing)
    card.referred_by = referrals.referred_by(session, program.id, profile_id)
    member = session.get(LoyaltyMember, (program.id, profile_id))
    if standing is None or member is None:
        return card
    card.progress = tier_progress(standing)
    card.challenges = progress_of(session, program.id, profile_id)
    card.referrals = referrals.referrals_of(session, program.id, profile_id)
    redeemed = rewards.redemptions_of(session, profile_id, program.id)
    names = {r.id: r.name for r in rewards.list_rewards(session, program.id, include_archived=True)}
    card.vouchers = [(r, names.get(r.reward_id, f"reward {r.reward_id}")) for r in redeemed[:VOUCHERS_SHOWN]]
    held = Counter(r.reward_id for r in redeemed if r.status != RedemptionStatus.cancelled)
    card.choices = _choices(session, program, member, held)
    card.ledger, card.older = _page(session, program.id, profile_id, None)
    return card


def member_card(session: Session, profile_id: str, flash: Flash | None = None) -> MemberCard:
    """The Loyalty card of a profile: a part per active program (member or not), then its coupons."""
    held = {s.program_id: s for s in standings(session, [profile_id]).get(profile_id, [])}
    parts = [
        _program_card(session, program, held.get(program.id or 0), profile_id)
        for program in programs.list_programs(session)
    ]
    return MemberCard(profile_id, parts, offers.coupons_of(session, profile_id), flash)


# --- the card and its ledger -----------------------------------------------------------------------
def _profile_id(session: Session, profile_id: str) -> str:
    try:
        return get_profile(session, profile_id).id
    except ProfileNotFound as exc:
        raise HTTPException(404, str(exc)) from exc


def _card(request: Request, principal: Principal, card: MemberCard, status: int = 200) -> Response:
    context = {"principal": principal, "perm": Permission, "loyalty_card": card}
    return render(request, "loyalty/member_card.html", context, status_code=status)


@router.get("/{program_id:int}/ledger", include_in_schema=False)
def ledger_fragment(
    request: Request, profile_id: str, program_id: int, principal: Reader, before: int
) -> Response:
    """Older ledger entries of one program: the rows before ``before``, and the button for more."""
    with tenant_session(principal.tenant.database) as tenant_db:
        found = _profile_id(tenant_db, profile_id)
        program = program_or_404(tenant_db, program_id)
        lines, older = _page(tenant_db, program_id, found, before)
    context = {
        "principal": principal,
        "program": program,
        "lines": lines,
        "older": older,
        "profile_id": found,
    }
    return render(request, "loyalty/member_ledger_rows.html", context)


# --- the counter's actions -------------------------------------------------------------------------
def _done(
    request: Request,
    control: Session,
    principal: Principal,
    tenant_db: Session,
    profile_id: str,
    action: str,
    message: str,
    **detail: Any,
) -> Response:
    """Commit, audit, tell segments and plugins, and answer with the card saying what was done."""
    tenant_db.commit()
    tenant_db.expire_all()  # the services changed rows behind the session's back (core statements)
    audit.record(control, actor=principal.actor, action=action, tenant_id=principal.tenant.id,
                 target=f"profile {profile_id}", detail=detail, **client_info(request))  # fmt: skip
    control.commit()
    after_profiles_changed(principal.tenant, [profile_id])  # loyalty conditions of segments
    tell_plugins(principal.tenant.slug, {profile_id})
    return _card(request, principal, member_card(tenant_db, profile_id, Flash("ok", message)))


def _refused(
    request: Request,
    principal: Principal,
    tenant_db: Session,
    profile_id: str,
    message: str,
    status: int = 409,
) -> Response:
    """Undo what was begun and answer with the card saying why not."""
    tenant_db.rollback()
    return _card(request, principal, member_card(tenant_db, profile_id, Flash("error", message)), status)


def _balance(tenant_db: Session, program: LoyaltyProgram, profile_id: str) -> str:
    found = next(
        (s for s in standings(tenant_db, [profile_id]).get(profile_id, []) if s.program_id == program.id),
        None,
    )
    return f"{found.balance if found else 0} {program.currency}"


@router.post("/{program_id:int}/redeem", include_in_schema=False)
def redeem(
    request: Request,
    profile_id: str,
    program_id: int,
    control: ControlDB,
    principal: Marketer,
    reward_id: Annotated[str, Form()] = "",
    key: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Redeem a reward for the member: the voucher's code and the new balance, or why not."""
    with tenant_session(principal.tenant.database) as tenant_db:
        found = _profile_id(tenant_db, profile_id)
        program = program_or_404(tenant_db, program_id)
        if not reward_id.isdigit():
            return _refused(request, principal, tenant_db, found, "Choose the reward to redeem.", 422)
        try:
            done = rewards.redeem(tenant_db, program, int(reward_id), found, principal.actor,
                                  idempotency_key=f"ui:{key}" if key else None)  # fmt: skip
            reward = rewards.get_reward(tenant_db, done.reward_id)
        except (LoyaltyError, rewards.RewardNotFound) as exc:
            return _refused(request, principal, tenant_db, found, f"Not redeemed: {exc}")
        tenant_db.flush()
        message = (
            f"Redeemed {reward.name}: voucher {done.code}. "
            f"New balance: {_balance(tenant_db, program, found)}."
        )
        return _done(request, control, principal, tenant_db, found, "loyalty.redeem", message,
                     program_id=program_id, reward_id=reward.id, redemption_id=done.id,
                     code=done.code)  # fmt: skip


def _code_of_profile(tenant_db: Session, profile_id: str, code: str) -> Redemption | Coupon | None:
    """The profile's voucher or coupon with this code (another person's code is not found)."""
    wanted = code.strip().upper()
    voucher = next((r for r in rewards.redemptions_of(tenant_db, profile_id) if r.code == wanted), None)
    return voucher or next((c for c, _ in offers.coupons_of(tenant_db, profile_id) if c.code == wanted), None)


@router.post("/codes/use", include_in_schema=False)
def use_code(
    request: Request,
    profile_id: str,
    control: ControlDB,
    principal: Marketer,
    code: Annotated[str, Form(max_length=60)] = "",
) -> Response:
    """Mark one of the profile's vouchers used, or record a use of one of its coupons."""
    with tenant_session(principal.tenant.database) as tenant_db:
        found = _profile_id(tenant_db, profile_id)
        held = _code_of_profile(tenant_db, found, code) if code.strip() else None
        if held is None:
            message = (
                f"This customer has no voucher or coupon {code.strip()!r}."
                if code.strip()
                else "Type the code."
            )
            return _refused(request, principal, tenant_db, found, message, 422)
        try:
            if isinstance(held, Redemption):
                rewards.use_voucher(tenant_db, held.code, principal.actor)
                message = f"Voucher {held.code} used."
            else:
                coupon = offers.use_coupon(tenant_db, held.code, principal.actor)
                left = coupon.max_uses - coupon.uses
                message = f"Coupon {coupon.code} used" + (f" ({left} use(s) left)." if left else ".")
        except LoyaltyError as exc:
            return _refused(request, principal, tenant_db, found, f"Not used: {exc}")
        action = "loyalty.voucher.use" if isinstance(held, Redemption) else "loyalty.coupon.use"
        return _done(request, control, principal, tenant_db, found, action, message, code=held.code)


@router.post("/vouchers/{redemption_id:int}/cancel", include_in_schema=False)
def cancel_voucher(
    request: Request, profile_id: str, redemption_id: int, control: ControlDB, principal: Marketer
) -> Response:
    """Cancel an unused voucher of the profile: its points and its unit of stock come back."""
    with tenant_session(principal.tenant.database) as tenant_db:
        found = _profile_id(tenant_db, profile_id)
        try:
            voucher = rewards.get_redemption(tenant_db, redemption_id)
        except rewards.RedemptionNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        if voucher.profile_id != found:
            raise HTTPException(404, f"This customer has no voucher {redemption_id}.")
        try:
            rewards.cancel_redemption(tenant_db, redemption_id, principal.actor)
        except LoyaltyError as exc:
            return _refused(request, principal, tenant_db, found, f"Not cancelled: {exc}")
        currency = program_or_404(tenant_db, voucher.program_id).currency
        message = f"Voucher {voucher.code} cancelled: {voucher.cost} {currency} back."
        return _done(request, control, principal, tenant_db, found, "loyalty.redemption.cancel", message,
                     program_id=voucher.program_id, redemption_id=redemption_id,
                     code=voucher.code)  # fmt: skip


@router.post("/{program_id:int}/adjust", include_in_schema=False)
def adjust_points(
    request: Request,
    profile_id: str,
    program_id: int,
    control: ControlDB,
    principal: Marketer,
    points: Annotated[str, Form(max_length=20)] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
    key: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Add (or, negative, take) points by hand; the reason is required and who did it recorded."""
    with tenant_session(principal.tenant.database) as tenant_db:
        found = _profile_id(tenant_db, profile_id)
        program = program_or_404(tenant_db, program_id)
        try:
            amount = int(points.strip())
        except ValueError:
            message = "Give the points as a whole number: 50 to add, -50 to take."
            return _refused(request, principal, tenant_db, found, message, 422)
        if not reason.strip():
            return _refused(
                request, principal, tenant_db, found, "Say why: an adjustment needs a reason.", 422
            )
        try:
            adjust(tenant_db, program, found, amount, principal.actor, reason,
                   idempotency_key=f"ui:{key}" if key else None)  # fmt: skip
        except LoyaltyError as exc:
            return _refused(request, principal, tenant_db, found, f"Not adjusted: {exc}")
        tenant_db.flush()
        verb = "Added" if amount > 0 else "Took"
        message = (
            f"{verb} {abs(amount)} {program.currency}. New balance: {_balance(tenant_db, program, found)}."
        )
        return _done(request, control, principal, tenant_db, found, "loyalty.adjust", message,
                     program_id=program_id, points=amount, reason=reason.strip())  # fmt: skip


@router.post("/{program_id:int}/referral", include_in_schema=False)
def apply_referral(
    request: Request,
    profile_id: str,
    program_id: int,
    control: ControlDB,
    principal: Marketer,
    code: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Record the referral code the customer came with (rewarded at their first purchase)."""
    with tenant_session(principal.tenant.database) as tenant_db:
        found = _profile_id(tenant_db, profile_id)
        program = program_or_404(tenant_db, program_id)
        try:
            referral = referrals.apply_code(tenant_db, program, found, code)
        except LoyaltyError as exc:
            return _refused(request, principal, tenant_db, found, f"Not applied: {exc}")
        message = f"Referral code {referral.code} applied: both are rewarded at the first purchase."
        return _done(request, control, principal, tenant_db, found, "loyalty.referral.apply", message,
                     program_id=program_id, code=referral.code, referrer_id=referral.referrer_id)  # fmt: skip
