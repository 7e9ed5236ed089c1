"""The segments API: create, change, read, archive, count (saved or ad-hoc rules), list members, reach.

A rule that is not valid answers 422 with ``problems`` (``path`` in the rule tree and
``message``), exactly as the builder shows them; a name already taken or an archive refused
because other segments use it answers 409.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from core.audit import service as audit
from core.db.engines import tenant_session
from core.queue.outbox import add_job
from core.segments import service
from core.segments.jobs import REFRESH_SEGMENTS
from core.segments.models import Segment
from core.segments.rules import Rule, RuleError
from core.tenancy.roles import Permission
from web.auth import ControlDB, Principal, client_info, require

router = APIRouter(prefix="/api/v1/segments", tags=["segments"])
Reader = Annotated[Principal, Depends(require(Permission.read_data, api=True))]
Marketer = Annotated[Principal, Depends(require(Permission.write_marketing, api=True))]


class SegmentIn(BaseModel):
    """A new segment."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=service.NAME_LENGTH)
    description: str = Field(default="", max_length=2000)
    rule: dict[str, Any] = Field(description="The rule tree (see docs/segments.md).")


class SegmentChange(BaseModel):
    """Changes to a segment; what is left out stays."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=service.NAME_LENGTH)
    description: str | None = Field(default=None, max_length=2000)
    rule: dict[str, Any] | None = None


class RuleIn(BaseModel):
    """A rule to count without saving it."""

    model_config = ConfigDict(extra="forbid")
    rule: dict[str, Any]


def _json(segment: Segment) -> dict[str, Any]:
    return {
        "id": segment.id, "name": segment.name, "description": segment.description, "rule": segment.rule,
        "size": segment.size, "counted_at": _iso(segment.counted_at),
        "created_at": _iso(segment.created_at), "created_by": segment.created_by,
        "updated_at": _iso(segment.updated_at), "updated_by": segment.updated_by,
    }  # fmt: skip


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _invalid(exc: RuleError) -> JSONResponse:
    problems = [{"path": p.path, "message": p.message} for p in exc.problems]
    return JSONResponse({"detail": "The rule is not valid.", "problems": problems}, status_code=422)


def _segment(session: Session, segment_id: int) -> Segment:
    try:
        return service.get_segment(session, segment_id)
    except service.SegmentNotFound as exc:
        raise HTTPException(404, str(exc)) from exc


def _stored_rule(session: Session, segment: Segment, scope: service.TenantScope) -> Rule:
    """The segment's rule, parsed; 409 if it no longer holds (e.g. a plugin it uses was disabled)."""
    try:
        return service.check_rule(session, segment.rule, scope.conditions, segment.id)
    except RuleError as exc:
        raise HTTPException(409, f"The segment's rule is no longer valid: {exc}") from exc


def _saved(request: Request, control: Session, principal: Principal, action: str, segment: Segment) -> None:
    audit.record(control, actor=principal.actor, action=action, tenant_id=principal.tenant.id,
                 target=f"segment {segment.id}", detail={"name": segment.name}, **client_info(request))  # fmt: skip
    control.commit()


@router.get("")
def list_segments(principal: Reader) -> dict[str, Any]:
    """Every active segment, by name."""
    with tenant_session(principal.tenant.database) as session:
        return {"segments": [_json(s) for s in service.active_segments(session)]}


@router.post("", status_code=201, response_model=None)
def create(
    body: SegmentIn, request: Request, control: ControlDB, principal: Marketer
) -> dict[str, Any] | Response:
    """Save a new segment; its members are evaluated in the background (``size`` is null until then)."""
    scope = service.tenant_scope(control, principal.tenant)
    with tenant_session(principal.tenant.database) as session:
        try:
            segment = service.create_segment(
                session, body.name, body.rule, principal.actor, scope.conditions, body.description
            )
        except RuleError as exc:
            return _invalid(exc)
        except service.SegmentConflict as exc:
            raise HTTPException(409, str(exc)) from exc
        add_job(session, principal.tenant.slug, REFRESH_SEGMENTS, {"segment_id": segment.id})
        session.commit()
        _saved(request, control, principal, "segment.create", segment)
        return _json(segment)


@router.get("/{segment_id}")
def read(segment_id: int, principal: Reader) -> dict[str, Any]:
    """One segment, with its size at the last evaluation."""
    with tenant_session(principal.tenant.database) as session:
        return _json(_segment(session, segment_id))


@router.patch("/{segment_id}", response_model=None)
def change(
    segment_id: int, body: SegmentChange, request: Request, control: ControlDB, principal: Marketer
) -> dict[str, Any] | Response:
    """Change a segment's name, description or rule; members are re-evaluated in the background."""
    scope = service.tenant_scope(control, principal.tenant)
    with tenant_session(principal.tenant.database) as session:
        _segment(session, segment_id)
        try:
            segment = service.update_segment(
                session, segment_id, principal.actor, scope.conditions,
                name=body.name, rule=body.rule, description=body.description,
            )  # fmt: skip
        except RuleError as exc:
            return _invalid(exc)
        except service.SegmentConflict as exc:
            raise HTTPException(409, str(exc)) from exc
        if body.rule is not None:
            add_job(session, principal.tenant.slug, REFRESH_SEGMENTS, {"segment_id": segment_id})
        session.commit()
        _saved(request, control, principal, "segment.update", segment)
        return _json(segment)


@router.delete("/{segment_id}", status_code=204)
def archive(segment_id: int, request: Request, control: ControlDB, principal: Marketer) -> Response:
    """Archive a segment: its members exit, it is no longer evaluated (409 while others use it)."""
    with tenant_session(principal.tenant.database) as session:
        _segment(session, segment_id)
        try:
            segment = service.archive_segment(session, segment_id, principal.actor)
        except service.SegmentConflict as exc:
            raise HTTPException(409, str(exc)) from exc
        session.commit()
        _saved(request, control, principal, "segment.archive", segment)
    return Response(status_code=204)


@router.get("/{segment_id}/count")
def count_saved(segment_id: int, control: ControlDB, principal: Reader) -> dict[str, Any]:
    """How many profiles match the segment's rule right now (live, not the last evaluation)."""
    scope = service.tenant_scope(control, principal.tenant)
    with tenant_session(principal.tenant.database) as session:
        rule = _stored_rule(session, _segment(session, segment_id), scope)
        return {"count": service.count(session, rule, scope.clock), "at": scope.clock.now.isoformat()}


@router.post("/count", response_model=None)
def count_rule(body: RuleIn, control: ControlDB, principal: Reader) -> dict[str, Any] | Response:
    """How many profiles an unsaved rule matches right now (for builders)."""
    scope = service.tenant_scope(control, principal.tenant)
    with tenant_session(principal.tenant.database) as session:
        try:
            rule = service.check_rule(session, body.rule, scope.conditions)
        except RuleError as exc:
            return _invalid(exc)
        return {"count": service.count(session, rule, scope.clock), "at": scope.clock.now.isoformat()}


@router.get("/{segment_id}/members")
def list_members(
    segment_id: int,
    principal: Reader,
    after: Annotated[
        str | None, Query(max_length=40, description="The ``next`` of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 100,
) -> dict[str, Any]:
    """The current members by profile id, a page at a time (``next`` is null on the last page)."""
    with tenant_session(principal.tenant.database) as session:
        _segment(session, segment_id)
        rows, cursor = service.members(session, segment_id, after, limit)
        members = [
            {"profile_id": m.profile_id, "name": m.name, "entered_at": _iso(m.entered_at)} for m in rows
        ]
        return {"members": members, "next": cursor}


@router.get("/{segment_id}/reach")
def channel_reach(segment_id: int, control: ControlDB, principal: Reader) -> dict[str, Any]:
    """Per enabled channel: members with marketing consent, and of those, with an address for it."""
    scope = service.tenant_scope(control, principal.tenant)
    with tenant_session(principal.tenant.database) as session:
        rule = _stored_rule(session, _segment(session, segment_id), scope)
        found = service.reach(session, rule, scope.clock, scope.channels)
        return {"reach": [r.__dict__ for r in found]}
