"""The durable job that refits the models and recomputes every buyer's traits (daily, or on demand)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from core.db.base import utcnow
from core.db.engines import control_session, tenant_engine
from core.tenancy.tenants import get_tenant
from core.traits.models import TraitFit
from core.traits.service import compute_all, fit_models, load_history

COMPUTE_TRAITS = "core.compute_traits"
EVERY = timedelta(days=1)


def tenant_zone(tenant_slug: str) -> tuple[str, ZoneInfo]:
    """The tenant's database and time zone."""
    with control_session() as control:
        tenant = get_tenant(control, tenant_slug)
        return tenant.database, ZoneInfo(tenant.timezone)


def refit(tenant_slug: str, as_of: datetime | None = None) -> tuple[TraitFit, int]:
    """Fit the models as of ``as_of`` (default now), then recompute every buyer as of then; (fit, buyers)."""
    database, zone = tenant_zone(tenant_slug)
    with Session(tenant_engine(database), expire_on_commit=False) as session:
        history = load_history(session, as_of or utcnow(), zone)  # read once for both steps
        fit = fit_models(session, zone=zone, history=history)
        buyers = compute_all(session, zone=zone, history=history)
        session.commit()
    return fit, buyers


def compute_traits(tenant_slug: str, payload: dict[str, Any]) -> None:
    """Job handler: refit and recompute (``payload["as_of"]``: an ISO date-time, optional)."""
    from core.segments.jobs import refresh_segments  # segments read computed traits: import cycle

    as_of = payload.get("as_of")
    refit(tenant_slug, datetime.fromisoformat(as_of) if isinstance(as_of, str) else None)
    refresh_segments(tenant_slug, {})  # every score moved: re-evaluate the segments that use them
