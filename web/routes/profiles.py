"""The Profiles pages: search, and the 360 view of one person (timeline, consents, privacy)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from core.db.engines import tenant_session
from core.internal_events.service import of_profile
from core.journeys.service import paths_of
from core.profiles import privacy_actions
from core.profiles.service import ProfileNotFound, count_profiles, get_profile, recent, search, timeline
from core.profiles.views import profile_view
from core.reporting.history import messages_of
from core.segments.jobs import after_profiles_changed
from core.tenancy.roles import Permission
from web.auth import ControlDB, Principal, client_info, require
from web.csrf import verify_csrf
from web.journey_builder.paths import path_views
from web.routes.loyalty_members import member_card
from web.routes.pages import page_context, panels
from web.templating import render

router = APIRouter(prefix="/t/{tenant}/profiles", dependencies=[Depends(verify_csrf)])
Reader = Annotated[Principal, Depends(require(Permission.read_data))]
Marketer = Annotated[Principal, Depends(require(Permission.write_marketing))]
PrivacyOfficer = Annotated[Principal, Depends(require(Permission.manage_privacy))]


@router.get("", include_in_schema=False)
def profiles_page(request: Request, session: ControlDB, principal: Reader, q: str = "") -> Response:
    """Search by any identifier or name; most recently seen first."""
    with tenant_session(principal.tenant.database) as tenant_db:
        found = search(tenant_db, q) if q.strip() else recent(tenant_db)
        total = count_profiles(tenant_db)
    template = "profiles/_results.html" if request.headers.get("hx-request") else "profiles/list.html"
    context = page_context(request, session, principal, section="profiles", profiles=found, q=q, total=total)
    return render(request, template, context)


@router.get("/{profile_id}", include_in_schema=False)
def profile_page(
    request: Request,
    profile_id: str,
    session: ControlDB,
    principal: Reader,
    type: str = "",
    source: str = "",
    offset: int = 0,
) -> Response:
    """The 360 view: identities, traits, consents, segments, journeys, messages, loyalty, merges, timeline."""
    with tenant_session(principal.tenant.database) as tenant_db:
        try:
            profile = get_profile(tenant_db, profile_id)
        except ProfileNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        if profile.id != profile_id:
            return RedirectResponse(f"/t/{principal.tenant.slug}/profiles/{profile.id}", status_code=303)
        view = profile_view(tenant_db, profile.id)
        journey_paths = path_views(paths_of(tenant_db, profile.id))
        messages, activity = messages_of(tenant_db, profile.id), of_profile(tenant_db, profile.id, 30)
        loyalty_card = member_card(tenant_db, profile.id)
        page = timeline(
            tenant_db, profile.id, type_=type or None, source=source or None, offset=max(offset, 0)
        )
    snapshot_context = {"profile_id": profile.id, "traits": view["traits"]}
    context = page_context(
        request, session, principal, section="profiles", profile=view, page=page,
        filters={"type": type, "source": source}, offset=offset, journey_paths=journey_paths,
        messages=messages, activity=activity, loyalty_card=loyalty_card,
        panels=panels(principal, "profile", session, snapshot_context),
    )  # fmt: skip
    template = (
        "profiles/_timeline.html"
        if request.headers.get("hx-target") == "timeline"
        else "profiles/detail.html"
    )
    return render(request, template, context)


@router.post("/{profile_id}/consents", include_in_schema=False)
def set_consent(
    request: Request,
    profile_id: str,
    principal: Marketer,
    channel: Annotated[str, Form(pattern=r"^[a-z][a-z0-9_.-]{0,99}$")],
    granted: Annotated[str, Form()],
    purpose: Annotated[str, Form(pattern=r"^[a-z][a-z0-9_.-]{0,99}$")] = "marketing",
) -> Response:
    """Record a consent statement made through the UI (source ``ui:<user>``)."""
    with tenant_session(principal.tenant.database) as tenant_db:
        try:
            profile = get_profile(tenant_db, profile_id)
        except ProfileNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        privacy_actions.record_consent(tenant_db, profile.id, channel, purpose, granted == "yes",
                                       source=f"ui:{principal.user.email}", at=None)  # fmt: skip
        tenant_db.commit()
        after_profiles_changed(principal.tenant, [profile.id])  # consent conditions of segments
    return RedirectResponse(f"/t/{principal.tenant.slug}/profiles/{profile.id}#consents", status_code=303)


@router.get("/{profile_id}/export", include_in_schema=False)
def export(request: Request, profile_id: str, principal: PrivacyOfficer) -> Response:
    """Download everything held on the person as JSON (audited)."""
    try:
        data = privacy_actions.export(principal.tenant, profile_id, principal.actor, client_info(request))
    except ProfileNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    filename = f"tessera-{principal.tenant.slug}-{data['profile']['id']}.json"
    return Response(json.dumps(data, indent=2), media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})  # fmt: skip


@router.post("/{profile_id}/erase", include_in_schema=False)
def erase(
    request: Request, profile_id: str, principal: PrivacyOfficer, confirm: Annotated[str, Form()] = ""
) -> Response:
    """Erase the person after typing ERASE to confirm (audited)."""
    if confirm.strip() != "ERASE":
        raise HTTPException(400, "Type ERASE to confirm the erasure.")
    try:
        privacy_actions.erase(principal.tenant, profile_id, principal.actor, client_info(request))
    except ProfileNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    return RedirectResponse(f"/t/{principal.tenant.slug}/profiles?erased={profile_id}", status_code=303)


@router.post("/{profile_id}/merges/{merge_id}/undo", include_in_schema=False)
def undo_merge(request: Request, profile_id: str, merge_id: int, principal: PrivacyOfficer) -> Response:
    """Undo a merge from the 360 view (audited)."""
    try:
        privacy_actions.undo(principal.tenant, merge_id, principal.actor, client_info(request))
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from exc
    return RedirectResponse(f"/t/{principal.tenant.slug}/profiles/{profile_id}#merges", status_code=303)
