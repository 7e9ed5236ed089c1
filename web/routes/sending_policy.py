"""Settings › Sending policy: frequency caps, quiet hours and rate limits of the tenant's sends.

Seeing it needs ``read_settings``; changing it ``manage_plugins`` (admins and operators, who
configure the channels: the rates follow the providers' limits, and the caps guard customers
against the marketers' own sends). Each change is audited as ``sending_policy.update``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from core.audit import service as audit
from core.db.engines import tenant_session
from core.delivery.models import SendingPolicy
from core.delivery.policy_store import get_policy, save_policy
from core.messages.policy import Policy
from core.segments.service import tenant_scope
from core.tenancy.roles import Permission
from web.auth import ControlDB, Principal, client_info, require
from web.campaign_pages.policy_form import PolicyForm, form_of, read_policy
from web.csrf import verify_csrf
from web.routes.pages import page_context
from web.templating import render

router = APIRouter(prefix="/t/{tenant}/settings/sending-policy", dependencies=[Depends(verify_csrf)])
SettingsReader = Annotated[Principal, Depends(require(Permission.read_settings))]
PolicyManager = Annotated[Principal, Depends(require(Permission.manage_plugins))]


def _channels(session: Session, principal: Principal, policy: Policy) -> dict[str, str]:
    """The enabled channels, and any other the saved policy names (so saving does not drop it)."""
    enabled = {key: ch.label for key, ch in tenant_scope(session, principal.tenant).channels.items()}
    others = {
        key: f"{key} (not enabled)"
        for key in [*policy.channel_caps, *policy.channel_rates]
        if key not in enabled
    }
    return dict(sorted({**enabled, **others}.items()))


def _page(
    request: Request,
    session: Session,
    principal: Principal,
    form: PolicyForm | None = None,
    saved: bool = False,
    status: int = 200,
) -> Response:
    with tenant_session(principal.tenant.database) as tenant_db:
        policy = get_policy(tenant_db)
        row = tenant_db.get(SendingPolicy, 1)
    channels = _channels(session, principal, policy)
    context = page_context(
        request, session, principal, section="settings", page="sending_policy", channels=channels,
        form=form or form_of(policy, channels), saved=saved, row=row, zone=principal.tenant.timezone,
        can_manage=principal.can(Permission.manage_plugins),
    )  # fmt: skip
    return render(request, "settings/sending_policy.html", context, status_code=status)


@router.get("", include_in_schema=False)
def policy_page(request: Request, session: ControlDB, principal: SettingsReader, saved: str = "") -> Response:
    """The tenant's sending policy as a form (read-only for roles that may not change it)."""
    return _page(request, session, principal, saved=saved == "1")


@router.post("", include_in_schema=False)
async def save_policy_form(request: Request, session: ControlDB, principal: PolicyManager) -> Response:
    """Replace the sending policy (audited); the form again with its problems if it is not valid."""
    posted = await request.form()
    with tenant_session(principal.tenant.database) as tenant_db:
        channels = _channels(session, principal, get_policy(tenant_db))
        policy, form = read_policy(posted, channels)
        if policy is None:
            return _page(request, session, principal, form=form, status=422)
        save_policy(tenant_db, policy, principal.actor)
        tenant_db.commit()
    audit.record(session, actor=principal.actor, action="sending_policy.update",
                 tenant_id=principal.tenant.id, target="sending policy",
                 detail=policy.model_dump(mode="json"), **client_info(request))  # fmt: skip
    session.commit()
    return RedirectResponse(f"/t/{principal.tenant.slug}/settings/sending-policy?saved=1", status_code=303)
