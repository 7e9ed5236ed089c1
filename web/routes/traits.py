"""Customer value: the fitted lifetime-value models, RFM segment sizes, top buyers, refit on demand."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlmodel import Session, col, select

from core.db.engines import tenant_session
from core.profiles.models import Profile
from core.queue.outbox import add_job
from core.tenancy.roles import Permission
from core.traits.jobs import COMPUTE_TRAITS
from core.traits.models import ComputedTraits
from core.traits.rfm import RfmSegment
from core.traits.service import fit_json, latest_fit, segment_sizes
from web.auth import ControlDB, Principal, require
from web.csrf import verify_csrf
from web.routes.pages import page_context
from web.templating import render

router = APIRouter(prefix="/t/{tenant}/traits", dependencies=[Depends(verify_csrf)])
Reader = Annotated[Principal, Depends(require(Permission.read_data))]
Marketer = Annotated[Principal, Depends(require(Permission.write_marketing))]
TOP = 10


def _top_buyers(session: Session) -> list[dict[str, Any]]:
    """The buyers with the highest predicted value (else revenue), with their names."""
    order = (col(ComputedTraits.predicted_clv).desc().nulls_last(), col(ComputedTraits.revenue).desc())
    rows = session.exec(
        select(ComputedTraits, Profile.display_name)
        .join(Profile, col(Profile.id) == col(ComputedTraits.profile_id))
        .order_by(*order)
        .limit(TOP)
    )
    return [{"traits": traits, "name": name} for traits, name in rows]


@router.get("", include_in_schema=False)
def traits_page(request: Request, session: ControlDB, principal: Reader) -> Response:
    """The models' parameters and date, buyers per RFM segment, the most valuable buyers."""
    with tenant_session(principal.tenant.database) as tenant_db:
        fit = latest_fit(tenant_db)
        context = page_context(
            request, session, principal, section="traits", fit=fit, model=fit_json(fit),
            sizes=segment_sizes(tenant_db), segments=list(RfmSegment), top=_top_buyers(tenant_db),
        )  # fmt: skip
    return render(request, "traits/overview.html", context)


@router.post("/refit", include_in_schema=False)
def refit_now(request: Request, session: ControlDB, principal: Marketer) -> Response:
    """Queue a refit and a rescoring of every buyer (a durable job)."""
    with tenant_session(principal.tenant.database) as tenant_db:
        job = add_job(tenant_db, principal.tenant.slug, COMPUTE_TRAITS, {})
        tenant_db.commit()
    context = page_context(request, session, principal, section="traits", job_id=job.id)
    return render(request, "traits/_queued.html", context)
