"""Offers in a loyalty program's UI: the program's and the tenant-wide ones, edited, archived and
assigned to a segment's members as coupons (audited).

The shared parts of the catalogue's pages are :mod:`web.routes.loyalty_catalogue`.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import Form, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlmodel import Session

from core.loyalty import offers
from core.loyalty.ledger import LoyaltyError
from core.loyalty.models import Coupon, Offer
from core.segments.models import Segment
from core.segments.service import active_segments
from web.auth import ControlDB
from web.campaign_pages.form import Problems
from web.loyalty_pages.catalogue_forms import Typed, offer_form, offer_in, read_typed, refused
from web.routes.loyalty_catalogue import Here, Marketer, Reader, catalogue_router, load_program

router = catalogue_router()
COUPON = Coupon.__table__  # type: ignore[attr-defined]


def _offer(tenant_db: Session, program_id: int, offer_id: int) -> Offer:
    """The offer, if it is this program's or tenant-wide (404 otherwise)."""
    try:
        offer = offers.get_offer(tenant_db, offer_id)
    except offers.OfferNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    if offer.program_id not in (None, program_id):
        raise HTTPException(404, f"Offer {offer_id} belongs to another program.")
    return offer


def offer_counts(tenant_db: Session, offer_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Per offer: the coupons assigned, and those used at least once."""
    used = sa.func.sum(sa.case((COUPON.c.uses > 0, 1), else_=0))
    query = (
        sa.select(COUPON.c.offer_id, sa.func.count(), used)
        .where(COUPON.c.offer_id.in_(offer_ids))
        .group_by(COUPON.c.offer_id)
    )
    return {row[0]: (int(row[1]), int(row[2] or 0)) for row in tenant_db.connection().execute(query)}


def _assigned(request: Request, found: list[Offer], segments: list[Segment]) -> str | None:
    """What the assignment just made did (read from ids and a count, never from text in the URL)."""
    params = request.query_params
    offer = next((o for o in found if str(o.id) == params.get("assigned")), None)
    segment = next((s for s in segments if str(s.id) == params.get("segment")), None)
    if offer is None or segment is None or not params.get("count", "").isdigit():
        return None
    return f"{offer.name}: {params['count']} new coupon(s) assigned to the members of {segment.name}."


def _offers_list(here: Here, error: str | None = None) -> Response:
    with here.tenant_db() as tenant_db:
        program = load_program(tenant_db, here.program_id)
        found = [
            o
            for o in offers.list_offers(tenant_db, include_archived=True)
            if o.program_id in (None, here.program_id)
        ]
        counts = offer_counts(tenant_db, [o.id for o in found if o.id is not None])
        segments = active_segments(tenant_db)
    return here.page("loyalty/offers.html", program, 409 if error else 200, offers=found, counts=counts,
                     segments=segments, notice=_assigned(here.request, found, segments),
                     error=error)  # fmt: skip


@router.get("/offers", include_in_schema=False)
def offers_page(request: Request, program_id: int, control: ControlDB, principal: Reader) -> Response:
    """The program's offers and the tenant-wide ones: value, validity, coupons assigned and used."""
    return _offers_list(Here(request, control, principal, program_id))


def _offer_page(
    here: Here, offer_id: int | None, form: Typed | None = None, problems: Problems | None = None
) -> Response:
    with here.tenant_db() as tenant_db:
        program = load_program(tenant_db, here.program_id)
        offer = _offer(tenant_db, here.program_id, offer_id) if offer_id else None
    if form is None:
        form = offer_form(offer, here.zone) if offer else {"max_uses": "1"}
    return here.page("loyalty/offer_form.html", program, 422 if problems else 200, offer=offer, form=form,
                     problems=problems or Problems())  # fmt: skip


@router.get("/offers/new", include_in_schema=False)
def new_offer_page(request: Request, program_id: int, control: ControlDB, principal: Marketer) -> Response:
    """The form of a new offer."""
    return _offer_page(Here(request, control, principal, program_id), None)


@router.get("/offers/{offer_id:int}/edit", include_in_schema=False)
def edit_offer_page(
    request: Request, program_id: int, offer_id: int, control: ControlDB, principal: Marketer
) -> Response:
    """The form of an offer."""
    return _offer_page(Here(request, control, principal, program_id), offer_id)


def _save_offer(here: Here, offer_id: int | None, form: Typed) -> Response:
    problems, saved = Problems(), None
    with here.tenant_db() as tenant_db:
        load_program(tenant_db, here.program_id)
        if offer_id is not None:
            _offer(tenant_db, here.program_id, offer_id)
        body = offer_in(form, here.zone, here.program_id, problems)
        try:
            if body is not None and offer_id is None:
                saved = offers.create_offer(tenant_db, body, here.principal.actor)
            elif body is not None and offer_id is not None:
                saved = offers.update_offer(tenant_db, offer_id, body, here.principal.actor)
        except LoyaltyError as exc:
            refused(problems, exc)
        if saved is None:
            tenant_db.rollback()
            return _offer_page(here, offer_id, form, problems)
        tenant_db.commit()
    action = "loyalty.offer.create" if offer_id is None else "loyalty.offer.update"
    here.audit(action, f"loyalty offer {saved.id}", name=saved.name, program_id=saved.program_id)
    return here.back("offers")


@router.post("/offers/new", include_in_schema=False)
async def create_offer(
    request: Request, program_id: int, control: ControlDB, principal: Marketer
) -> Response:
    """Save a new offer (audited); the form again with its problems otherwise."""
    form = await read_typed(request)
    return await run_in_threadpool(_save_offer, Here(request, control, principal, program_id), None, form)


@router.post("/offers/{offer_id:int}/edit", include_in_schema=False)
async def update_offer(
    request: Request, program_id: int, offer_id: int, control: ControlDB, principal: Marketer
) -> Response:
    """Change an offer; coupons assigned keep their validity and uses (audited)."""
    form = await read_typed(request)
    return await run_in_threadpool(_save_offer, Here(request, control, principal, program_id), offer_id, form)


@router.post("/offers/{offer_id:int}/archive", include_in_schema=False)
def archive_offer(
    request: Request, program_id: int, offer_id: int, control: ControlDB, principal: Marketer
) -> Response:
    """Withdraw an offer: no more assignments, and its coupons no longer apply (audited)."""
    here = Here(request, control, principal, program_id)
    with here.tenant_db() as tenant_db:
        offer = _offer(tenant_db, program_id, offer_id)
        offers.archive_offer(tenant_db, offer_id, principal.actor)
        tenant_db.commit()
    here.audit("loyalty.offer.archive", f"loyalty offer {offer_id}", name=offer.name)
    return here.back("offers")


@router.post("/offers/{offer_id:int}/assign", include_in_schema=False)
def assign_offer(
    request: Request,
    program_id: int,
    offer_id: int,
    control: ControlDB,
    principal: Marketer,
    segment_id: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Give the offer to the segment's current members who have no coupon for it yet (audited)."""
    here = Here(request, control, principal, program_id)
    with here.tenant_db() as tenant_db:
        offer = _offer(tenant_db, program_id, offer_id)
        segment = next((s for s in active_segments(tenant_db) if str(s.id) == segment_id), None)
        if segment is None or segment.id is None:
            return _offers_list(here, "Choose the segment to assign the offer to.")
        try:
            count = offers.assign_segment(
                tenant_db, offer_id, segment.id, principal.actor, tenant_slug=principal.tenant.slug
            )
        except LoyaltyError as exc:
            tenant_db.rollback()
            return _offers_list(here, f"Not assigned: {exc}")
        tenant_db.commit()
    here.audit("loyalty.offer.assign", f"loyalty offer {offer_id}", name=offer.name, segment_id=segment.id,
               segment=segment.name, assigned=count)  # fmt: skip
    return here.back("offers", urlencode({"assigned": offer_id, "count": count, "segment": segment.id}))
