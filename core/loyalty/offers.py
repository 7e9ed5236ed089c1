"""Personal offers and their coupons: an offer assigned to a profile becomes a coupon with its own code.

An offer ("20% off", "a free coffee") is assigned to profiles one by one, to the current members
of a segment, or by a journey step; each profile gets one coupon per offer (assigning again keeps
the first). A coupon is valid until the offer's ``valid_until`` or ``valid_days`` after it was
assigned, whichever comes first, and may be used ``max_uses`` times (as the offer said when it
was assigned). Every assignment and use is an internal event (``Loyalty Offer Assigned``,
``Loyalty Offer Used``).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.db.base import utcnow
from core.db.bulk import chunks, select_in
from core.loyalty import events
from core.loyalty.ledger import LoyaltyError
from core.loyalty.models import Coupon, CouponStatus, CouponUse, LoyaltyProgram, Offer, OfferStatus
from core.loyalty.rewards import CODE_TRIES, NameTaken, Refused, aware, new_code
from core.passes.marking import mark_changed
from core.segments.models import Segment, SegmentMembership

log = logging.getLogger(__name__)
COUPON = Coupon.__table__  # type: ignore[attr-defined]
OFFER = Offer.__table__  # type: ignore[attr-defined]
MEMBERSHIP = SegmentMembership.__table__  # type: ignore[attr-defined]
CHUNK = 2_000


class OfferNotFound(LookupError):
    """No offer has this id."""


class CouponNotFound(LookupError):
    """No coupon has this code."""


class CouponRefused(Refused):
    """Assigning an offer or using or revoking a coupon is refused.

    Codes: ``revoked``, ``used_up``, ``expired``, ``not_valid_yet``, ``archived`` (the offer),
    ``key_reused`` (an idempotency key already used with another coupon).
    """


class OfferIn(BaseModel):
    """An offer as a marketer gives it (times without an offset are UTC)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    value: str = Field(default="", max_length=200, description='What it gives, e.g. "20% off".')
    code_prefix: str = Field(default="", max_length=10, pattern=r"^[A-Za-z0-9]*$")
    max_uses: int = Field(default=1, ge=1, le=1_000_000, description="Uses of each coupon.")
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    valid_days: int | None = Field(
        default=None, ge=1, le=3660, description="Days a coupon lasts once assigned."
    )
    program_id: int | None = None


# --- the offers -------------------------------------------------------------------------------------
def _checked(session: Session, body: OfferIn, offer_id: int | None) -> dict[str, Any]:
    name = body.name.strip()
    if not name:
        raise LoyaltyError("Give the offer a name.")
    taken = session.exec(select(Offer.id).where(Offer.name == name)).first()
    if taken is not None and taken != offer_id:
        raise NameTaken(f"An offer is already named {name!r}.")
    if body.program_id is not None and session.get(LoyaltyProgram, body.program_id) is None:
        raise LoyaltyError(f"There is no loyalty program {body.program_id}.")
    values = body.model_dump()
    values.update(name=name, code_prefix=body.code_prefix.upper(), valid_from=aware(body.valid_from),
                  valid_until=aware(body.valid_until))  # fmt: skip
    if values["valid_from"] and values["valid_until"] and values["valid_until"] <= values["valid_from"]:
        raise LoyaltyError("valid_until must come after valid_from.")
    return values


def create_offer(session: Session, body: OfferIn, actor: str) -> Offer:
    """A new active offer; :class:`LoyaltyError` if it cannot be."""
    offer = Offer(**_checked(session, body, None), created_by=actor)
    session.add(offer)
    session.flush()
    return offer


def get_offer(session: Session, offer_id: int) -> Offer:
    """The offer, or :class:`OfferNotFound`."""
    offer = session.get(Offer, offer_id)
    if offer is None:
        raise OfferNotFound(f"There is no offer {offer_id}.")
    return offer


def update_offer(session: Session, offer_id: int, body: OfferIn, actor: str) -> Offer:
    """Replace an offer's settings (coupons already assigned keep their validity and uses)."""
    offer = get_offer(session, offer_id)
    for name, value in _checked(session, body, offer_id).items():
        setattr(offer, name, value)
    session.add(offer)
    session.flush()
    log.info("offer %s (%r) changed by %s", offer.id, offer.name, actor)
    return offer


def archive_offer(session: Session, offer_id: int, actor: str) -> Offer:
    """Withdraw an offer: it is no longer assigned, and its coupons can no longer be used."""
    offer = get_offer(session, offer_id)
    offer.status = OfferStatus.archived
    session.add(offer)
    session.flush()
    log.info("offer %s (%r) archived by %s", offer.id, offer.name, actor)
    return offer


def list_offers(
    session: Session, include_archived: bool = False, program_id: int | None = None
) -> list[Offer]:
    """The offers (of one program, or all), newest first."""
    query = select(Offer)
    if not include_archived:
        query = query.where(Offer.status == OfferStatus.active)
    if program_id is not None:
        query = query.where(Offer.program_id == program_id)
    return list(session.exec(query.order_by(col(Offer.id).desc())))


# --- assigning --------------------------------------------------------------------------------------
def _assignable(offer: Offer, now: datetime) -> None:
    if offer.status == OfferStatus.archived:
        raise CouponRefused("archived", f"Offer {offer.name!r} is archived: it can no longer be assigned.")
    until = aware(offer.valid_until)
    if until is not None and now >= until:
        raise CouponRefused("expired", f"Offer {offer.name!r} ended on {until:%Y-%m-%d %H:%M} UTC.")


def _coupon_until(offer: Offer, now: datetime) -> datetime | None:
    ends = [aware(offer.valid_until), now + timedelta(days=offer.valid_days) if offer.valid_days else None]
    known = [moment for moment in ends if moment is not None]
    return min(known) if known else None


def _existing(session: Session, offer_id: int, profile_ids: Collection[str]) -> dict[str, Any]:
    query = sa.select(COUPON).where(COUPON.c.offer_id == offer_id)
    return {
        row.profile_id: row
        for row in select_in(session.connection(), query, COUPON.c.profile_id, profile_ids, pg_type="text")
    }


def _assign(
    session: Session, offer: Offer, profile_ids: Sequence[str], assigned_by: str, now: datetime
) -> list[str]:
    """Give a coupon to each profile that has none for the offer; the profiles that got one."""
    assert offer.id is not None
    connection = session.connection()
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    until = _coupon_until(offer, now)
    missing = [p for p in profile_ids if p not in _existing(session, offer.id, profile_ids)]
    codes: dict[str, str] = {}
    for _ in range(CODE_TRIES):
        if not missing:
            break
        rows = [
            {"offer_id": offer.id, "profile_id": p, "code": new_code(offer.code_prefix), "status": CouponStatus.active,
             "uses": 0, "max_uses": offer.max_uses, "assigned_at": now, "assigned_by": assigned_by, "valid_until": until}
            for p in missing
        ]  # fmt: skip
        # Without a conflict target: a profile assigned meanwhile (offer + profile) and a code
        # drawn twice are both skipped; the second kind is drawn again on the next round.
        insert = dialect.insert(COUPON).on_conflict_do_nothing().returning(COUPON.c.profile_id, COUPON.c.code)
        for chunk in chunks(rows, 500):
            codes.update((row.profile_id, row.code) for row in connection.execute(insert.values(list(chunk))))
        leftover = [p for p in missing if p not in codes]
        taken = _existing(session, offer.id, leftover) if leftover else {}
        missing = [p for p in leftover if p not in taken]
    if missing:
        raise LoyaltyError(f"Could not draw free coupon codes after {CODE_TRIES} tries: try again.")
    events.emit(session, [
        events.event_row(events.OFFER_ASSIGNED, p, {
            "offer": offer.name, "offer_id": offer.id, "program_id": offer.program_id, "value": offer.value,
            "code": code, "valid_until": until.isoformat() if until else None, "assigned_by": assigned_by}, now)
        for p, code in codes.items()
    ])  # fmt: skip
    return list(codes)


def assign(
    session: Session,
    offer_id: int,
    profile_ids: Sequence[str],
    assigned_by: str,
    *,
    now: datetime | None = None,
    tenant_slug: str | None = None,
) -> list[Coupon]:
    """The profiles' coupons for the offer (in the order given), assigning it to those without one.

    :class:`CouponRefused` when the offer is archived or over. With ``tenant_slug``, wallet passes
    of the profiles that got a coupon are re-issued after the caller commits.
    """
    now = now or utcnow()
    offer = get_offer(session, offer_id)
    _assignable(offer, now)
    wanted = list(dict.fromkeys(profile_ids))
    given = _assign(session, offer, wanted, assigned_by, now)
    if tenant_slug:
        mark_changed(session, tenant_slug, given)
    query = select(Coupon).where(Coupon.offer_id == offer_id, col(Coupon.profile_id).in_(wanted))
    found = {c.profile_id: c for c in session.exec(query.execution_options(populate_existing=True))}
    return [found[p] for p in wanted if p in found]


def assign_segment(
    session: Session,
    offer_id: int,
    segment_id: int,
    assigned_by: str,
    *,
    now: datetime | None = None,
    tenant_slug: str | None = None,
) -> int:
    """Assign the offer to the segment's current members; how many got a new coupon.

    With ``tenant_slug``, wallet passes of those who got one are re-issued after the caller commits.
    """
    now = now or utcnow()
    offer = get_offer(session, offer_id)
    _assignable(offer, now)
    segment = session.get(Segment, segment_id)
    if segment is None or segment.archived_at is not None:
        raise LoyaltyError(f"There is no segment {segment_id} (or it is archived).")
    query = (
        sa.select(MEMBERSHIP.c.profile_id)
        .where(MEMBERSHIP.c.segment_id == segment_id, MEMBERSHIP.c.exited_at.is_(None))
        .order_by(MEMBERSHIP.c.profile_id)
    )
    members = [row.profile_id for row in session.connection().execute(query)]
    given = 0
    for chunk in chunks(members, CHUNK):
        assigned = _assign(session, offer, chunk, assigned_by, now)
        if tenant_slug:
            mark_changed(session, tenant_slug, assigned)
        given += len(assigned)
    return given


# --- using ------------------------------------------------------------------------------------------
def _locked_coupon(session: Session, code: str) -> Coupon:
    query = select(Coupon).where(Coupon.code == code.strip().upper()).with_for_update()
    coupon = session.exec(query.execution_options(populate_existing=True)).first()
    if coupon is None:
        raise CouponNotFound(f"There is no coupon {code.strip()!r}.")
    return coupon


def _use_of(session: Session, idempotency_key: str) -> CouponUse | None:
    return session.exec(select(CouponUse).where(CouponUse.idempotency_key == idempotency_key)).first()


def coupon_refusal(coupon: Coupon, offer: Offer, now: datetime) -> CouponRefused | None:
    """Why the coupon cannot be used at ``now`` (None: it can)."""
    if coupon.status == CouponStatus.revoked:
        return CouponRefused("revoked", f"Coupon {coupon.code} was revoked.")
    if coupon.status == CouponStatus.used or coupon.uses >= coupon.max_uses:
        return CouponRefused(
            "used_up", f"Coupon {coupon.code} was used {coupon.uses} time(s), all it allows."
        )
    if offer.status == OfferStatus.archived:
        return CouponRefused("archived", f"Offer {offer.name!r} was withdrawn: its coupons no longer apply.")
    valid_from, until = aware(offer.valid_from), aware(coupon.valid_until)
    if valid_from is not None and now < valid_from:
        return CouponRefused(
            "not_valid_yet", f"Coupon {coupon.code} applies from {valid_from:%Y-%m-%d %H:%M} UTC."
        )
    if until is not None and now >= until:
        return CouponRefused("expired", f"Coupon {coupon.code} expired on {until:%Y-%m-%d %H:%M} UTC.")
    return None


def use_coupon(
    session: Session,
    code: str,
    actor: str,
    *,
    order_id: str | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> Coupon:
    """Record one use of a coupon; it is used up once its uses reach ``max_uses``.

    :class:`CouponRefused` (with its ``code``) when it cannot be used, :class:`CouponNotFound` for
    an unknown code. Repeating an ``idempotency_key`` records nothing new and returns the coupon.
    """
    now = now or utcnow()
    coupon = _locked_coupon(session, code)
    if idempotency_key is not None and (use := _use_of(session, idempotency_key)) is not None:
        if use.coupon_id != coupon.id:
            raise CouponRefused("key_reused", "This idempotency key was already used with another coupon.")
        return coupon
    offer = get_offer(session, coupon.offer_id)
    refusal = coupon_refusal(coupon, offer, now)
    if refusal is not None:
        raise refusal
    assert coupon.id is not None
    try:
        with session.begin_nested():
            use = CouponUse(coupon_id=coupon.id, idempotency_key=idempotency_key, order_id=order_id, actor=actor,
                            used_at=now)  # fmt: skip
            session.add(use)
            session.flush()
    except IntegrityError as exc:  # the key was just used with another coupon
        raise CouponRefused(
            "key_reused", "This idempotency key was already used with another coupon."
        ) from exc
    coupon.uses += 1
    if coupon.uses >= coupon.max_uses:
        coupon.status = CouponStatus.used
    session.add(coupon)
    session.flush()
    properties = {"offer": offer.name, "offer_id": offer.id, "program_id": offer.program_id, "value": offer.value,
                  "code": coupon.code, "order_id": order_id, "uses": coupon.uses,
                  "uses_left": coupon.max_uses - coupon.uses, "by": actor}  # fmt: skip
    events.emit(session, [events.event_row(events.OFFER_USED, coupon.profile_id, properties, now)])
    return coupon


def revoke_coupon(session: Session, code: str, actor: str) -> Coupon:
    """Take a coupon back before it is used up; :class:`CouponRefused` if it is revoked or used up."""
    coupon = _locked_coupon(session, code)
    if coupon.status == CouponStatus.revoked:
        raise CouponRefused("revoked", f"Coupon {coupon.code} is already revoked.")
    if coupon.status == CouponStatus.used:
        raise CouponRefused("used_up", f"Coupon {coupon.code} is used up: there is nothing to revoke.")
    coupon.status = CouponStatus.revoked
    session.add(coupon)
    session.flush()
    log.info("coupon %s revoked by %s", coupon.code, actor)
    return coupon


def get_coupon(session: Session, code: str) -> Coupon:
    """The coupon with this code, or :class:`CouponNotFound`."""
    coupon = session.exec(select(Coupon).where(Coupon.code == code.strip().upper())).first()
    if coupon is None:
        raise CouponNotFound(f"There is no coupon {code.strip()!r}.")
    return coupon


# --- reading ---------------------------------------------------------------------------------------
def coupons_of(
    session: Session, profile_id: str, *, now: datetime | None = None
) -> list[tuple[Coupon, Offer]]:
    """A profile's coupons with their offers: those usable now first, each group newest first."""
    now = now or utcnow()
    query = (
        select(Coupon, Offer)
        .join(Offer, col(Offer.id) == col(Coupon.offer_id))
        .where(Coupon.profile_id == profile_id)
        .order_by(col(Coupon.id).desc())
    )
    found = [(coupon, offer) for coupon, offer in session.exec(query)]
    return sorted(found, key=lambda pair: coupon_refusal(pair[0], pair[1], now) is not None)


def coupon_fields(
    session: Session | Connection, profile_ids: Collection[str], *, now: datetime | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Each profile's coupons usable now, for templates and pass fields (every profile gets a list).

    Each coupon is ``code``, ``offer`` (its name), ``value``, ``valid_until`` (ISO or None) and
    ``uses_left``; soonest to expire first. One query on PostgreSQL whatever the number of profiles
    (one per 400 profiles on SQLite).
    """
    now = now or utcnow()
    fields: dict[str, list[dict[str, Any]]] = {p: [] for p in profile_ids}
    query = (
        sa.select(COUPON, OFFER.c.name.label("offer_name"), OFFER.c.value.label("offer_value"),
                  OFFER.c.status.label("offer_status"), OFFER.c.valid_from.label("offer_from"))
        .join(OFFER, OFFER.c.id == COUPON.c.offer_id)
        .where(COUPON.c.status == CouponStatus.active, OFFER.c.status == OfferStatus.active)
    )  # fmt: skip
    connection = session if isinstance(session, Connection) else session.connection()
    rows = list(select_in(connection, query, COUPON.c.profile_id, list(fields), pg_type="text"))
    never = datetime.max.replace(tzinfo=now.tzinfo)
    for row in sorted(rows, key=lambda r: (aware(r.valid_until) or never, r.id)):
        until, starts = aware(row.valid_until), aware(row.offer_from)
        if (
            row.uses >= row.max_uses
            or (until is not None and now >= until)
            or (starts is not None and now < starts)
        ):
            continue
        fields[row.profile_id].append({"code": row.code, "offer": row.offer_name, "value": row.offer_value,
                                       "valid_until": until.isoformat() if until else None,
                                       "uses_left": row.max_uses - row.uses})  # fmt: skip
    return fields
