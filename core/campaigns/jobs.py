"""The campaign launch job: at the confirmed (or scheduled) time, write the deliveries."""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel import Session

from core.campaigns.service import LAUNCH_CAMPAIGN, run_launch
from core.db.engines import control_session, tenant_engine
from core.segments.service import tenant_scope
from core.tenancy.tenants import get_tenant

log = logging.getLogger(__name__)
__all__ = ["LAUNCH_CAMPAIGN", "launch_campaign"]


def launch_campaign(tenant_slug: str, payload: dict[str, Any]) -> None:
    """Job ``core.launch_campaign``: write campaign ``payload["campaign_id"]``'s deliveries (once)."""
    with control_session() as control:
        tenant = get_tenant(control, tenant_slug)
        scope = tenant_scope(control, tenant)
    with Session(tenant_engine(tenant.database), expire_on_commit=False) as session:
        written = run_launch(session, tenant, scope, int(payload["campaign_id"]))
        session.commit()
    log.info("campaign %s/%s launched: %d deliveries", tenant_slug, payload["campaign_id"], written)
