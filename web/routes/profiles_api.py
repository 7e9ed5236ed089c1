"""The profile API: read the 360 view, set consent, export or erase a person, undo a merge."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from core.consent import service as consent
from core.db.engines import tenant_session
from core.profiles import privacy_actions
from core.profiles.service import ProfileNotFound, find_by_identifier, get_profile, search, timeline
from core.profiles.views import profile_view
from core.segments.jobs import after_profiles_changed
from core.tenancy.roles import Permission
from web.auth import Principal, client_info, require

router = APIRouter(prefix="/api/v1", tags=["profiles"])
Reader = Annotated[Principal, Depends(require(Permission.read_data, api=True))]
Marketer = Annotated[Principal, Depends(require(Permission.write_marketing, api=True))]
PrivacyOfficer = Annotated[Principal, Depends(require(Permission.manage_privacy, api=True))]


class ConsentIn(BaseModel):
    """A consent statement for one channel and purpose."""

    model_config = ConfigDict(extra="forbid")
    channel: str = Field(pattern=r"^[a-z][a-z0-9_.-]{0,99}$")
    purpose: str = Field(default="marketing", pattern=r"^[a-z][a-z0-9_.-]{0,99}$")
    granted: bool
    at: datetime | None = Field(default=None, description="When the person said so (default: now).")


def _not_found(exc: Exception) -> HTTPException:
    return HTTPException(404, str(exc))


@router.get("/profiles")
def find_profiles(
    principal: Reader,
    identifier: Annotated[str | None, Query(description="TYPE:VALUE, e.g. email:ann@example.com")] = None,
    q: Annotated[str | None, Query(description="Search names and identifiers")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    """One profile by identifier (``identifier=email:ann@example.com``), or a search (``q=ann``)."""
    if not identifier and not q:
        raise HTTPException(400, "Give identifier=TYPE:VALUE or q=TEXT.")
    with tenant_session(principal.tenant.database) as session:
        if identifier:
            type_, sep, value = identifier.partition(":")
            if not sep or not value:
                raise HTTPException(400, "identifier must be TYPE:VALUE, e.g. email:ann@example.com")
            try:
                normalized = privacy_actions.normalize_identifier(principal.tenant, type_, value)
                return profile_view(session, find_by_identifier(session, type_, normalized).id)
            except ValueError as exc:
                raise HTTPException(400, str(exc)) from exc
            except ProfileNotFound as exc:
                raise _not_found(exc) from exc
        return [profile_view(session, p.id, full=False) for p in search(session, q or "", limit)]


@router.get("/profiles/{profile_id}")
def read_profile(profile_id: str, principal: Reader) -> dict[str, Any]:
    """The 360 view of one profile (a merged-away id answers with the profile it joined)."""
    with tenant_session(principal.tenant.database) as session:
        try:
            return profile_view(session, get_profile(session, profile_id).id)
        except ProfileNotFound as exc:
            raise _not_found(exc) from exc


@router.get("/profiles/{profile_id}/events")
def read_events(
    profile_id: str,
    principal: Reader,
    type: str | None = None,
    source: str | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The profile's timeline, newest first, filtered by type (or track event name) and source."""
    with tenant_session(principal.tenant.database) as session:
        try:
            profile = get_profile(session, profile_id)
        except ProfileNotFound as exc:
            raise _not_found(exc) from exc
        page = timeline(session, profile.id, type_=type, source=source, offset=offset, limit=limit)
        return {
            "profile_id": profile.id,
            "events": [e.model_dump(mode="json", exclude={"error"}) for e in page.events],
            "next_offset": page.next_offset,
            "types": page.types,
            "sources": page.sources,
        }


@router.post("/profiles/{profile_id}/consents")
def set_consent(profile_id: str, body: ConsentIn, request: Request, principal: Marketer) -> dict[str, Any]:
    """Record a consent statement (source ``api``); the history keeps every statement."""
    with tenant_session(principal.tenant.database) as session:
        try:
            profile = get_profile(session, profile_id)
        except ProfileNotFound as exc:
            raise _not_found(exc) from exc
        privacy_actions.record_consent(session, profile.id, body.channel, body.purpose, body.granted,
                                       source=f"api:{principal.user.email}", at=body.at)  # fmt: skip
        session.commit()
        after_profiles_changed(principal.tenant, [profile.id])  # consent conditions of segments
        return {
            "consents": [
                c.model_dump(mode="json", exclude={"id"}) for c in consent.current(session, profile.id)
            ]
        }


@router.get("/profiles/{profile_id}/export")
def export(profile_id: str, request: Request, principal: PrivacyOfficer) -> dict[str, Any]:
    """Everything held on the person, as JSON (audited)."""
    try:
        return privacy_actions.export(principal.tenant, profile_id, principal.actor, client_info(request))
    except ProfileNotFound as exc:
        raise _not_found(exc) from exc


@router.delete("/profiles/{profile_id}")
def erase(profile_id: str, request: Request, principal: PrivacyOfficer) -> dict[str, Any]:
    """Erase the person: profile, identifiers, events, consents, derived data (audited)."""
    try:
        return privacy_actions.erase(principal.tenant, profile_id, principal.actor, client_info(request))
    except ProfileNotFound as exc:
        raise _not_found(exc) from exc


@router.post("/merges/{merge_id}/undo")
def undo(merge_id: int, request: Request, principal: PrivacyOfficer) -> dict[str, Any]:
    """Separate two merged profiles again, each with its own identifiers, events and traits."""
    try:
        return privacy_actions.undo(principal.tenant, merge_id, principal.actor, client_info(request))
    except LookupError as exc:
        raise _not_found(exc) from exc
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from exc
