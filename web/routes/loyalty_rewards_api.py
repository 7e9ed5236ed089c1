"""The loyalty rewards API: the rewards catalogue, redemptions and their vouchers, personal offers
and their coupons.

Invalid settings answer 422; unknown programs, rewards, offers, profiles, vouchers and coupons
404; a refusal (not enough points, out of stock, a voucher already used, a coupon used up, ...)
409 with ``{"detail": <why, in words>, "code": <why, in one word>}``. Catalogue and offer changes,
assignments, redemptions, cancellations and revocations are audited (``loyalty.reward.*``,
``loyalty.offer.*``, ``loyalty.redeem``, ``loyalty.redemption.cancel``, ``loyalty.coupon.revoke``);
uses at the till are recorded on the voucher or coupon with who used it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlmodel import Session, col, select

from core.db.base import utcnow
from core.db.engines import tenant_session
from core.loyalty import offers, rewards
from core.loyalty.events import tell_plugins
from core.loyalty.ledger import LoyaltyError
from core.loyalty.models import Coupon, LoyaltyMember, Offer, Redemption, Reward
from core.loyalty.rewards import NameTaken, Refused
from core.profiles.service import ProfileNotFound, get_profile
from core.tenancy.roles import Permission
from web.auditing import audit_change
from web.auth import ControlDB, Principal, require
from web.loyalty_pages.access import program_or_404

router = APIRouter(prefix="/api/v1", tags=["loyalty rewards"])
Reader = Annotated[Principal, Depends(require(Permission.read_data, api=True))]
Marketer = Annotated[Principal, Depends(require(Permission.write_marketing, api=True))]
MAX_PROFILES = 1_000


class RedemptionIn(BaseModel):
    """A reward to redeem for the profile."""

    model_config = ConfigDict(extra="forbid")
    program_id: int
    reward_id: int
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=200, description="Repeating it returns the same redemption."
    )


class VoucherUseIn(BaseModel):
    """Where a voucher was used."""

    model_config = ConfigDict(extra="forbid")
    order_id: str | None = Field(default=None, max_length=200)


class AssignIn(BaseModel):
    """Who gets the offer: some profiles, or the current members of a segment."""

    model_config = ConfigDict(extra="forbid")
    profile_ids: list[str] | None = Field(default=None, min_length=1, max_length=MAX_PROFILES)
    segment_id: int | None = None

    @model_validator(mode="after")
    def _one_of(self) -> AssignIn:
        if (self.profile_ids is None) == (self.segment_id is None):
            raise ValueError("give either profile_ids or segment_id")
        return self


class CouponUseIn(BaseModel):
    """Where a coupon was used; the same ``idempotency_key`` again records nothing new."""

    model_config = ConfigDict(extra="forbid")
    order_id: str | None = Field(default=None, max_length=200)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


def _iso(moment: datetime | None) -> str | None:
    aware = rewards.aware(moment)
    return aware.isoformat() if aware else None


def reward_json(reward: Reward) -> dict[str, Any]:
    """A reward as the API shows it."""
    return reward.model_dump(mode="json")


def redemption_json(redemption: Redemption, reward: Reward | None = None) -> dict[str, Any]:
    """A redemption (its voucher) as the API shows it."""
    data = redemption.model_dump(mode="json")
    data["reward"] = reward.name if reward else None
    return data


def offer_json(offer: Offer) -> dict[str, Any]:
    """An offer as the API shows it."""
    return offer.model_dump(mode="json")


def coupon_json(coupon: Coupon, offer: Offer) -> dict[str, Any]:
    """A coupon with what its offer gives, as the API shows it."""
    usable = offers.coupon_refusal(coupon, offer, utcnow()) is None
    return {"code": coupon.code, "offer_id": offer.id, "offer": offer.name, "value": offer.value,
            "description": offer.description, "status": coupon.status.value, "usable": usable, "uses": coupon.uses,
            "max_uses": coupon.max_uses, "uses_left": max(0, coupon.max_uses - coupon.uses),
            "valid_from": _iso(offer.valid_from), "valid_until": _iso(coupon.valid_until),
            "assigned_at": _iso(coupon.assigned_at), "assigned_by": coupon.assigned_by}  # fmt: skip


def _refused(exc: Refused) -> JSONResponse:
    return JSONResponse({"detail": str(exc), "code": exc.code}, status_code=409)


def _invalid(exc: LoyaltyError) -> HTTPException:
    return HTTPException(409 if isinstance(exc, NameTaken) else 422, str(exc))


def _reward(session: Session, program_id: int, reward_id: int) -> Reward:
    try:
        return rewards.get_reward(session, reward_id, program_id)
    except rewards.RewardNotFound as exc:
        raise HTTPException(404, str(exc)) from exc


def _offer(session: Session, offer_id: int) -> Offer:
    try:
        return offers.get_offer(session, offer_id)
    except offers.OfferNotFound as exc:
        raise HTTPException(404, str(exc)) from exc


def _profile_id(session: Session, profile_id: str) -> str:
    """The profile's id (a merged-away id gives the profile it joined); 404 for an unknown one."""
    try:
        return get_profile(session, profile_id).id
    except ProfileNotFound as exc:
        raise HTTPException(404, str(exc)) from exc


def _holders(session: Session, offer_id: int, profile_ids: list[str]) -> set[str]:
    query = select(Coupon.profile_id).where(
        Coupon.offer_id == offer_id, col(Coupon.profile_id).in_(profile_ids)
    )
    return set(session.exec(query))


def _balance(session: Session, program_id: int, profile_id: str) -> int:
    member = session.exec(
        select(LoyaltyMember)
        .where(LoyaltyMember.program_id == program_id, LoyaltyMember.profile_id == profile_id)
        .execution_options(populate_existing=True)
    ).first()
    return member.balance if member else 0


# --- the catalogue -----------------------------------------------------------------------------------
@router.get("/loyalty/programs/{program_id}/rewards")
def list_rewards(program_id: int, principal: Reader, archived: bool = False) -> dict[str, Any]:
    """The program's rewards, cheapest first (``archived=true``: withdrawn ones too)."""
    with tenant_session(principal.tenant.database) as session:
        program_or_404(session, program_id)
        found = rewards.list_rewards(session, program_id, include_archived=archived)
        return {"rewards": [reward_json(r) for r in found]}


@router.post("/loyalty/programs/{program_id}/rewards", status_code=201)
def create_reward(
    program_id: int, body: rewards.RewardIn, request: Request, control: ControlDB, principal: Marketer
) -> dict[str, Any]:
    """Add a reward to the program's catalogue."""
    with tenant_session(principal.tenant.database) as session:
        program_or_404(session, program_id)
        try:
            reward = rewards.create_reward(session, program_id, body, principal.actor)
        except LoyaltyError as exc:
            raise _invalid(exc) from exc
        session.commit()
        audit_change(request, control, principal, "loyalty.reward.create", f"loyalty reward {reward.id}",
               program_id=program_id, name=reward.name, cost=reward.cost)  # fmt: skip
        return reward_json(reward)


@router.get("/loyalty/programs/{program_id}/rewards/{reward_id}")
def read_reward(program_id: int, reward_id: int, principal: Reader) -> dict[str, Any]:
    """One reward."""
    with tenant_session(principal.tenant.database) as session:
        return reward_json(_reward(session, program_id, reward_id))


@router.put("/loyalty/programs/{program_id}/rewards/{reward_id}")
def change_reward(
    program_id: int,
    reward_id: int,
    body: rewards.RewardIn,
    request: Request,
    control: ControlDB,
    principal: Marketer,
) -> dict[str, Any]:
    """Replace a reward's settings (``stock``: the units left from now on)."""
    with tenant_session(principal.tenant.database) as session:
        _reward(session, program_id, reward_id)
        try:
            reward = rewards.update_reward(session, program_id, reward_id, body, principal.actor)
        except LoyaltyError as exc:
            raise _invalid(exc) from exc
        session.commit()
        audit_change(request, control, principal, "loyalty.reward.update", f"loyalty reward {reward_id}",
               program_id=program_id, name=reward.name)  # fmt: skip
        return reward_json(reward)


@router.post("/loyalty/programs/{program_id}/rewards/{reward_id}/archive")
def archive_reward(
    program_id: int, reward_id: int, request: Request, control: ControlDB, principal: Marketer
) -> dict[str, Any]:
    """Withdraw a reward from the catalogue (vouchers already issued stay valid)."""
    with tenant_session(principal.tenant.database) as session:
        _reward(session, program_id, reward_id)
        reward = rewards.archive_reward(session, program_id, reward_id, principal.actor)
        session.commit()
        audit_change(request, control, principal, "loyalty.reward.archive", f"loyalty reward {reward_id}",
               program_id=program_id, name=reward.name)  # fmt: skip
        return reward_json(reward)


# --- redemptions and vouchers ------------------------------------------------------------------------
@router.post("/profiles/{profile_id}/loyalty/redemptions", status_code=201, response_model=None)
def redeem(
    profile_id: str, body: RedemptionIn, request: Request, control: ControlDB, principal: Marketer
) -> Any:
    """Redeem a reward for the profile: its voucher, and the balance after (the same
    ``idempotency_key`` again answers with the same redemption, taking nothing more)."""
    with tenant_session(principal.tenant.database) as session:
        program = program_or_404(session, body.program_id)
        member = _profile_id(session, profile_id)
        _reward(session, body.program_id, body.reward_id)
        key = body.idempotency_key
        repeated = key is not None and rewards.redemption_by_key(session, key) is not None
        try:
            redemption = rewards.redeem(session, program, body.reward_id, member, principal.actor,
                                        idempotency_key=body.idempotency_key)  # fmt: skip
        except Refused as exc:
            return _refused(exc)
        session.commit()
        reward = session.get(Reward, redemption.reward_id)
        if not repeated:
            audit_change(request, control, principal, "loyalty.redeem", f"profile {member}", program_id=program.id,
                   reward_id=redemption.reward_id, redemption_id=redemption.id, cost=redemption.cost)  # fmt: skip
            tell_plugins(principal.tenant.slug, {member})
        return {**redemption_json(redemption, reward), "balance": _balance(session, body.program_id, member)}


@router.get("/profiles/{profile_id}/loyalty/redemptions")
def list_redemptions(profile_id: str, principal: Reader, program_id: int | None = None) -> dict[str, Any]:
    """The profile's redemptions (in one program, or all), newest first."""
    with tenant_session(principal.tenant.database) as session:
        member = _profile_id(session, profile_id)
        found = rewards.redemptions_of(session, member, program_id)
        ids = {r.reward_id for r in found}
        names = {r.id: r for r in session.exec(select(Reward).where(col(Reward.id).in_(ids)))} if ids else {}
        return {
            "profile_id": member,
            "redemptions": [redemption_json(r, names.get(r.reward_id)) for r in found],
        }


@router.post("/loyalty/vouchers/{code}/use", response_model=None)
def use_voucher(code: str, principal: Marketer, body: VoucherUseIn | None = None) -> Any:
    """Mark a voucher used (by whom is recorded); 409 if it is used, cancelled or expired."""
    with tenant_session(principal.tenant.database) as session:
        try:
            redemption = rewards.use_voucher(session, code, principal.actor, body.order_id if body else None)
        except rewards.RedemptionNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except Refused as exc:
            return _refused(exc)
        session.commit()
        return redemption_json(redemption, session.get(Reward, redemption.reward_id))


@router.post("/loyalty/redemptions/{redemption_id}/cancel", response_model=None)
def cancel_redemption(redemption_id: int, request: Request, control: ControlDB, principal: Marketer) -> Any:
    """Cancel an unused voucher: its points and its unit of stock come back."""
    with tenant_session(principal.tenant.database) as session:
        try:
            redemption = rewards.cancel_redemption(session, redemption_id, principal.actor)
        except rewards.RedemptionNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except Refused as exc:
            return _refused(exc)
        session.commit()
        audit_change(request, control, principal, "loyalty.redemption.cancel", f"profile {redemption.profile_id}",
               redemption_id=redemption_id, refunded=redemption.cost)  # fmt: skip
        tell_plugins(principal.tenant.slug, {redemption.profile_id})
        balance = _balance(session, redemption.program_id, redemption.profile_id)
        return {**redemption_json(redemption, session.get(Reward, redemption.reward_id)), "balance": balance}


# --- offers and coupons ------------------------------------------------------------------------------
@router.get("/loyalty/offers")
def list_offers(principal: Reader, archived: bool = False, program_id: int | None = None) -> dict[str, Any]:
    """The offers (of one program, or all), newest first (``archived=true``: withdrawn ones too)."""
    with tenant_session(principal.tenant.database) as session:
        found = offers.list_offers(session, include_archived=archived, program_id=program_id)
        return {"offers": [offer_json(o) for o in found]}


@router.post("/loyalty/offers", status_code=201)
def create_offer(
    body: offers.OfferIn, request: Request, control: ControlDB, principal: Marketer
) -> dict[str, Any]:
    """Create an offer, to assign to profiles."""
    with tenant_session(principal.tenant.database) as session:
        try:
            offer = offers.create_offer(session, body, principal.actor)
        except LoyaltyError as exc:
            raise _invalid(exc) from exc
        session.commit()
        audit_change(
            request, control, principal, "loyalty.offer.create", f"loyalty offer {offer.id}", name=offer.name
        )
        return offer_json(offer)


@router.get("/loyalty/offers/{offer_id}")
def read_offer(offer_id: int, principal: Reader) -> dict[str, Any]:
    """One offer."""
    with tenant_session(principal.tenant.database) as session:
        return offer_json(_offer(session, offer_id))


@router.put("/loyalty/offers/{offer_id}")
def change_offer(
    offer_id: int, body: offers.OfferIn, request: Request, control: ControlDB, principal: Marketer
) -> dict[str, Any]:
    """Replace an offer's settings (coupons already assigned keep their validity and uses)."""
    with tenant_session(principal.tenant.database) as session:
        _offer(session, offer_id)
        try:
            offer = offers.update_offer(session, offer_id, body, principal.actor)
        except LoyaltyError as exc:
            raise _invalid(exc) from exc
        session.commit()
        audit_change(
            request, control, principal, "loyalty.offer.update", f"loyalty offer {offer_id}", name=offer.name
        )
        return offer_json(offer)


@router.post("/loyalty/offers/{offer_id}/archive")
def archive_offer(offer_id: int, request: Request, control: ControlDB, principal: Marketer) -> dict[str, Any]:
    """Withdraw an offer: no more assignments, and its coupons no longer apply."""
    with tenant_session(principal.tenant.database) as session:
        _offer(session, offer_id)
        offer = offers.archive_offer(session, offer_id, principal.actor)
        session.commit()
        audit_change(
            request, control, principal, "loyalty.offer.archive", f"loyalty offer {offer_id}", name=offer.name
        )
        return offer_json(offer)


@router.post("/loyalty/offers/{offer_id}/assign", response_model=None)
def assign_offer(
    offer_id: int, body: AssignIn, request: Request, control: ControlDB, principal: Marketer
) -> Any:
    """Assign the offer to profiles (their coupons) or to a segment's current members (how many
    got a new coupon); profiles who have the offer keep their coupon."""
    with tenant_session(principal.tenant.database) as session:
        offer = _offer(session, offer_id)
        try:
            if body.segment_id is not None:
                assigned = offers.assign_segment(
                    session, offer_id, body.segment_id, principal.actor, tenant_slug=principal.tenant.slug
                )
                coupons = None
            else:
                wanted = [_profile_id(session, p) for p in body.profile_ids or []]
                before = _holders(session, offer_id, wanted)
                coupons = offers.assign(
                    session, offer_id, wanted, principal.actor, tenant_slug=principal.tenant.slug
                )
                assigned = len({c.profile_id for c in coupons} - before)
        except Refused as exc:
            return _refused(exc)
        except LoyaltyError as exc:
            raise _invalid(exc) from exc
        session.commit()
        audit_change(request, control, principal, "loyalty.offer.assign", f"loyalty offer {offer_id}", name=offer.name,
               segment_id=body.segment_id, profiles=len(body.profile_ids or []), assigned=assigned)  # fmt: skip
        if coupons is None:
            return {"assigned": assigned}
        return {"assigned": assigned, "coupons": [coupon_json(c, offer) for c in coupons]}


@router.post("/loyalty/coupons/{code}/use", response_model=None)
def use_coupon(code: str, principal: Marketer, body: CouponUseIn | None = None) -> Any:
    """Record one use of a coupon (by whom is recorded); 409 if it cannot be used now."""
    with tenant_session(principal.tenant.database) as session:
        try:
            coupon = offers.use_coupon(session, code, principal.actor, order_id=body.order_id if body else None,
                                       idempotency_key=body.idempotency_key if body else None)  # fmt: skip
        except offers.CouponNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except Refused as exc:
            return _refused(exc)
        session.commit()
        return coupon_json(coupon, _offer(session, coupon.offer_id))


@router.post("/loyalty/coupons/{code}/revoke", response_model=None)
def revoke_coupon(code: str, request: Request, control: ControlDB, principal: Marketer) -> Any:
    """Take a coupon back before it is used up."""
    with tenant_session(principal.tenant.database) as session:
        try:
            coupon = offers.revoke_coupon(session, code, principal.actor)
        except offers.CouponNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except Refused as exc:
            return _refused(exc)
        session.commit()
        audit_change(request, control, principal, "loyalty.coupon.revoke", f"profile {coupon.profile_id}",
               code=coupon.code, offer_id=coupon.offer_id)  # fmt: skip
        return coupon_json(coupon, _offer(session, coupon.offer_id))


@router.get("/profiles/{profile_id}/loyalty/coupons")
def list_coupons(profile_id: str, principal: Reader) -> dict[str, Any]:
    """The profile's coupons, those usable now first."""
    with tenant_session(principal.tenant.database) as session:
        member = _profile_id(session, profile_id)
        return {
            "profile_id": member,
            "coupons": [coupon_json(c, o) for c, o in offers.coupons_of(session, member)],
        }
