"""The one delivery report across every channel: all sends together, then per channel.

Campaigns and journeys have their own reports on their pages; this page is where a marketer
compares channels. Every figure comes from :mod:`core.reporting.report`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from core.db.engines import tenant_session
from core.plugins import get_host
from core.reporting.report import channels_reported, report
from core.tenancy.roles import Permission
from web.auth import ControlDB, Principal, require
from web.csrf import verify_csrf
from web.routes.pages import page_context
from web.templating import render

router = APIRouter(prefix="/t/{tenant}/reports", dependencies=[Depends(verify_csrf)])
Reader = Annotated[Principal, Depends(require(Permission.read_data))]


@router.get("", include_in_schema=False)
def reports_page(request: Request, session: ControlDB, principal: Reader) -> Response:
    """Every send of the tenant (campaigns, journeys, any channel): totals, over time, per channel."""
    zone = principal.tenant.timezone
    with tenant_session(principal.tenant.database) as tenant_db:
        overall = report(tenant_db, zone)
        per_channel = [(key, report(tenant_db, zone, channel=key)) for key in channels_reported(tenant_db)]
    labels = {key: r.item.label for key, r in get_host().channels.items()}
    context = page_context(request, session, principal, section="reports", overall=overall,
                           per_channel=per_channel, labels=labels, zone=zone)  # fmt: skip
    return render(request, "reports/overview.html", context)
