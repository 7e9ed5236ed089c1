"""The journeys API: create, change, read, list, activate, pause, archive, enter a profile, report.

A definition that is not valid answers 422 with ``problems`` (``path`` into the definition and
``message``); a name already taken, or a change or action the journey's status forbids, 409; a
profile entered into a journey that is not active or not API-triggered, or that the re-entry
policy keeps out, 409.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from core.audit import service as audit
from core.db.engines import tenant_session
from core.journeys import service
from core.journeys.models import Journey, JourneyEntry
from core.profiles.service import ProfileNotFound
from core.reporting.report import Report, as_csv, journey_csv_rows, report, step_reports
from core.segments.service import tenant_scope
from core.tenancy.roles import Permission
from web.auth import ControlDB, Principal, client_info, require

router = APIRouter(prefix="/api/v1/journeys", tags=["journeys"])
Reader = Annotated[Principal, Depends(require(Permission.read_data, api=True))]
Marketer = Annotated[Principal, Depends(require(Permission.write_marketing, api=True))]


class EntryIn(BaseModel):
    """A profile to enter into an API-triggered journey, with data its messages read as ``event.*``."""

    model_config = ConfigDict(extra="forbid")
    profile_id: str = Field(min_length=1, max_length=40)
    data: dict[str, Any] = Field(default_factory=dict)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def journey_json(journey: Journey) -> dict[str, Any]:
    """A journey as the API shows it."""
    return {
        "id": journey.id, "name": journey.name, "description": journey.description,
        "definition": journey.definition, "status": journey.status.value, "version": journey.version,
        "activated_at": _iso(journey.activated_at), "created_at": _iso(journey.created_at),
        "created_by": journey.created_by, "updated_at": _iso(journey.updated_at), "updated_by": journey.updated_by,
    }  # fmt: skip


def entry_json(entry: JourneyEntry) -> dict[str, Any]:
    """One profile's pass through a journey."""
    return {
        "id": entry.id, "journey_id": entry.journey_id, "profile_id": entry.profile_id, "step": entry.step,
        "state": entry.state.value, "due_at": _iso(entry.due_at), "waiting_event": entry.waiting_event,
        "entered_at": _iso(entry.entered_at), "ended_at": _iso(entry.ended_at),
        "converted_at": _iso(entry.converted_at), "data": entry.data,
    }  # fmt: skip


def _invalid(exc: service.DefinitionInvalid) -> JSONResponse:
    problems = [{"path": path, "message": message} for path, message in exc.problems]
    return JSONResponse({"detail": "The journey is not valid.", "problems": problems}, status_code=422)


def _journey(session: Session, journey_id: int) -> Journey:
    try:
        return service.get_journey(session, journey_id)
    except service.JourneyNotFound as exc:
        raise HTTPException(404, str(exc)) from exc


def _saved(request: Request, control: Session, principal: Principal, action: str, journey: Journey) -> None:
    audit.record(control, actor=principal.actor, action=action, tenant_id=principal.tenant.id,
                 target=f"journey {journey.id}", detail={"name": journey.name, "version": journey.version},
                 **client_info(request))  # fmt: skip
    control.commit()


@router.get("")
def list_journeys(principal: Reader) -> dict[str, Any]:
    """Every journey, by name, with how many passes it had."""
    with tenant_session(principal.tenant.database) as session:
        return {
            "journeys": [
                {**journey_json(j), "entries": service.journey_summary(session, j.id or 0)}
                for j in service.list_journeys(session)
            ]
        }


@router.post("", status_code=201, response_model=None)
def create(body: service.JourneyIn, request: Request, control: ControlDB, principal: Marketer) -> Any:
    """Save a new draft journey (nobody enters until it is activated)."""
    scope = tenant_scope(control, principal.tenant)
    with tenant_session(principal.tenant.database) as session:
        try:
            journey = service.create_journey(session, scope, body, principal.actor)
        except service.DefinitionInvalid as exc:
            return _invalid(exc)
        except service.JourneyRefused as exc:
            raise HTTPException(409, str(exc)) from exc
        session.commit()
        _saved(request, control, principal, "journey.create", journey)
        return journey_json(journey)


@router.get("/{journey_id}")
def read(journey_id: int, principal: Reader) -> dict[str, Any]:
    """One journey, with how many passes it had and how many went through each step."""
    with tenant_session(principal.tenant.database) as session:
        journey = _journey(session, journey_id)
        counts = service.step_counts(session, journey_id)
        return {
            **journey_json(journey),
            "entries": service.journey_summary(session, journey_id),
            "steps": {key: {"entered": c.entered, "here_now": c.here_now} for key, c in counts.items()},
        }


@router.put("/{journey_id}", response_model=None)
def change(
    journey_id: int, body: service.JourneyIn, request: Request, control: ControlDB, principal: Marketer
) -> Any:
    """Replace a draft or paused journey (entries of a paused one at removed steps exit)."""
    scope = tenant_scope(control, principal.tenant)
    with tenant_session(principal.tenant.database) as session:
        _journey(session, journey_id)
        try:
            journey = service.update_journey(session, scope, journey_id, body, principal.actor)
        except service.DefinitionInvalid as exc:
            return _invalid(exc)
        except service.JourneyRefused as exc:
            raise HTTPException(409, str(exc)) from exc
        session.commit()
        _saved(request, control, principal, "journey.update", journey)
        return journey_json(journey)


@router.post("/{journey_id}/activate", response_model=None)
def activate(journey_id: int, request: Request, control: ControlDB, principal: Marketer) -> Any:
    """Start or resume the journey: its trigger enters profiles from now on, its timers run."""
    scope = tenant_scope(control, principal.tenant)
    with tenant_session(principal.tenant.database) as session:
        journey = _journey(session, journey_id)
        try:
            journey = service.activate(session, principal.tenant, scope, journey, principal.actor)
        except service.DefinitionInvalid as exc:
            return _invalid(exc)
        except service.JourneyRefused as exc:
            raise HTTPException(409, str(exc)) from exc
        session.commit()
        _saved(request, control, principal, "journey.activate", journey)
        return journey_json(journey)


@router.post("/{journey_id}/pause")
def pause(journey_id: int, request: Request, control: ControlDB, principal: Marketer) -> dict[str, Any]:
    """Hold the journey: nobody enters, no timer runs, until it is activated again."""
    with tenant_session(principal.tenant.database) as session:
        journey = _journey(session, journey_id)
        try:
            journey = service.pause(session, journey, principal.actor)
        except service.JourneyRefused as exc:
            raise HTTPException(409, str(exc)) from exc
        session.commit()
        _saved(request, control, principal, "journey.pause", journey)
        return journey_json(journey)


@router.post("/{journey_id}/archive")
def archive(journey_id: int, request: Request, control: ControlDB, principal: Marketer) -> dict[str, Any]:
    """Retire the journey: every entry still in it exits; its report stays."""
    with tenant_session(principal.tenant.database) as session:
        journey = _journey(session, journey_id)
        try:
            journey = service.archive(session, journey, principal.actor)
        except service.JourneyRefused as exc:
            raise HTTPException(409, str(exc)) from exc
        session.commit()
        _saved(request, control, principal, "journey.archive", journey)
        return journey_json(journey)


@router.get("/{journey_id}/report")
def journey_report(journey_id: int, principal: Reader) -> dict[str, Any]:
    """The delivery report of the whole journey (``converted``: converted passes), per step (the
    step's delivery report with ``entered`` and ``here_now``), and the passes (``entries``)."""
    zone = principal.tenant.timezone
    with tenant_session(principal.tenant.database) as session:
        _journey(session, journey_id)
        entries = service.journey_summary(session, journey_id)
        counts = service.step_counts(session, journey_id)
        per_step = step_reports(session, journey_id, zone)
        steps = {
            key: {**per_step.get(key, Report()).as_dict(), "entered": c.entered, "here_now": c.here_now}
            for key, c in counts.items()
        }
        whole = report(session, zone, journey_id=journey_id).as_dict()
        return {"journey_id": journey_id, **whole, "converted": entries["converted"], "steps": steps,
                "entries": entries}  # fmt: skip


@router.get("/{journey_id}/report.csv")
def journey_report_csv(journey_id: int, principal: Reader) -> Response:
    """The report as CSV: per day and in total, for the whole journey (``step`` all) and each send step."""
    with tenant_session(principal.tenant.database) as session:
        _journey(session, journey_id)
        rows = journey_csv_rows(session, journey_id, principal.tenant.timezone)
    headers = {"Content-Disposition": f'attachment; filename="journey-{journey_id}-report.csv"'}
    return Response(as_csv(rows), media_type="text/csv", headers=headers)


@router.post("/{journey_id}/entries", status_code=201)
def enter(journey_id: int, body: EntryIn, control: ControlDB, principal: Marketer) -> dict[str, Any]:
    """Enter a profile into an active, API-triggered journey; it starts at once."""
    scope = tenant_scope(control, principal.tenant)
    with tenant_session(principal.tenant.database) as session:
        journey = _journey(session, journey_id)
        try:
            entry = service.enter(session, principal.tenant, scope, journey, body.profile_id, body.data)
        except ProfileNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except service.JourneyRefused as exc:
            raise HTTPException(409, str(exc)) from exc
        if entry is None:
            raise HTTPException(409, "The journey's re-entry rule keeps this profile out now.")
        session.commit()
        return entry_json(entry)
