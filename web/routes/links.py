"""Tracked links: ``GET /l/{tenant}/{token}`` records the click and sends the browser to the target.

Public on purpose (the person clicking is a customer, not a user): the token is signed per tenant,
delivery and link, so a forged, altered or another tenant's token finds nothing. Anything that
does not lead to a known link answers the same 404 page and records nothing.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from core.db.engines import tenant_session
from core.delivery.links import read_token
from core.delivery.statuses import record_click
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
