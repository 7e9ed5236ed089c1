"""Tracked links and opens.

``GET /l/{tenant}/{token}`` records a click and sends the browser to the target; ``/o/{tenant}/{token}``
(``GET`` or ``POST``) is what an app calls when its customer opens a push notification, and records
the message as opened (see ``docs/push-open-tracking.md``).

Public on purpose (the person clicking is a customer, not a user): the token is signed per tenant,
delivery and link, so a forged, altered or another tenant's token finds nothing. Anything that
does not lead to a known link answers the same 404 page and records nothing.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from core.db.engines import tenant_session
from core.delivery.links import read_open_token, read_token
from core.delivery.models import Delivery
from core.delivery.statuses import apply_channel_events, record_click
from core.plugin_api import ChannelEvent, DeliveryStatus
from core.tenancy.errors import NotFound
from core.tenancy.tenants import get_tenant
from web.auth import ControlDB
from web.templating import render

router = APIRouter()


def _not_found(request: Request) -> Response:
    context = {"status_code": 404, "title": "Link not found",
               "detail": "This link is not valid (it may have been copied incompletely)."}  # fmt: skip
    return render(request, "error.html", context, status_code=404)


@router.get("/l/{tenant}/{token}", include_in_schema=False)
def follow_link(request: Request, tenant: str, token: str, session: ControlDB) -> Response:
    """Record a click on a tracked link (delivery, timeline event) and redirect to its target."""
    try:
        found = get_tenant(session, tenant)
    except NotFound:
        return _not_found(request)
    read = read_token(found.slug, token)
    if read is None:
        return _not_found(request)
    with tenant_session(found.database) as tenant_db:
        target = record_click(tenant_db, *read)
        if target is None:
            tenant_db.rollback()
            return _not_found(request)
        tenant_db.commit()
    # 302, not 301: every click must come back here to be counted.
    return RedirectResponse(target, status_code=302)


@router.api_route("/o/{tenant}/{token}", methods=["GET", "POST"], include_in_schema=False)
def record_open(tenant: str, token: str, session: ControlDB) -> Response:
    """Record that the customer opened this delivery's message (the first report counts): 204."""
    unknown = JSONResponse({"detail": "Unknown open-tracking address."}, status_code=404)
    try:
        found = get_tenant(session, tenant)
    except NotFound:
        return unknown
    delivery_id = read_open_token(found.slug, token)
    if delivery_id is None:
        return unknown
    with tenant_session(found.database) as tenant_db:
        delivery = tenant_db.get(Delivery, delivery_id)
        if delivery is None:
            return unknown
        opened = ChannelEvent(status=DeliveryStatus.read, delivery_id=str(delivery_id))
        apply_channel_events(tenant_db, delivery.channel, [opened])
        tenant_db.commit()
    return Response(status_code=204)
