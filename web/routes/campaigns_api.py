"""The campaigns API: create, change, read, list, confirm, launch, cancel, and the report.

Content that is not valid answers 422 with ``problems`` (``language``, ``field``, ``line``,
``message``); a launch that would send blanks answers 422 with ``missing`` (the profiles lacking
each value) unless ``skip_missing``; a change or launch the campaign's state forbids answers 409.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from core.audit import service as audit
from core.campaigns import service
from core.campaigns.models import Campaign
from core.db.engines import tenant_session
from core.messages.personalization import MissingValue, TemplateInvalid
from core.plugins import get_host
from core.reporting.report import as_csv, csv_rows, report
from core.segments.service import tenant_scope
from core.tenancy.errors import TenancyError
from core.tenancy.plugin_settings import channel_context
from core.tenancy.roles import Permission
from web.auth import ControlDB, Principal, client_info, require

router = APIRouter(prefix="/api/v1/campaigns", tags=["campaigns"])
Reader = Annotated[Principal, Depends(require(Permission.read_data, api=True))]
Marketer = Annotated[Principal, Depends(require(Permission.write_marketing, api=True))]


class LaunchIn(BaseModel):
    """Options of a launch."""

    model_config = ConfigDict(extra="forbid")
    skip_missing: bool = Field(
        default=False, description="Suppress profiles lacking a value, instead of refusing."
    )


class ProfileIn(BaseModel):
    """A profile to preview or test-send to."""

    model_config = ConfigDict(extra="forbid")
    profile_id: str = Field(min_length=1, max_length=40)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def campaign_json(campaign: Campaign) -> dict[str, Any]:
    """A campaign as the API shows it."""
    return {
        "id": campaign.id, "name": campaign.name, "segment_id": campaign.segment_id,
        "channel": campaign.channel, "content": campaign.content, "marketing": campaign.marketing,
        "goal_event": campaign.goal_event, "goal_days": campaign.goal_days, "status": campaign.status.value,
        "scheduled_at": _iso(campaign.scheduled_at), "launched_at": _iso(campaign.launched_at),
        "completed_at": _iso(campaign.completed_at), "created_at": _iso(campaign.created_at),
        "created_by": campaign.created_by, "updated_at": _iso(campaign.updated_at),
        "updated_by": campaign.updated_by,
    }  # fmt: skip


def _invalid(exc: TemplateInvalid) -> JSONResponse:
    problems = [
        {"language": p.language, "field": p.field, "line": p.line, "message": p.message} for p in exc.problems
    ]
    return JSONResponse({"detail": "The content is not valid.", "problems": problems}, status_code=422)


def _campaign(session: Session, campaign_id: int) -> Campaign:
    try:
        return service.get_campaign(session, campaign_id)
    except service.CampaignNotFound as exc:
        raise HTTPException(404, str(exc)) from exc


def _saved(
    request: Request, control: Session, principal: Principal, action: str, campaign: Campaign, **detail: Any
) -> None:
    audit.record(control, actor=principal.actor, action=action, tenant_id=principal.tenant.id,
                 target=f"campaign {campaign.id}", detail={"name": campaign.name, **detail},
                 **client_info(request))  # fmt: skip
    control.commit()


@router.get("")
def list_campaigns(principal: Reader) -> dict[str, Any]:
    """Every campaign, newest first."""
    with tenant_session(principal.tenant.database) as session:
        return {"campaigns": [campaign_json(c) for c in service.list_campaigns(session)]}


@router.post("", status_code=201, response_model=None)
def create(body: service.CampaignIn, request: Request, control: ControlDB, principal: Marketer) -> Any:
    """Save a new draft campaign (nothing is sent until it is launched)."""
    scope = tenant_scope(control, principal.tenant)
    with tenant_session(principal.tenant.database) as session:
        try:
            campaign = service.create_campaign(session, principal.tenant, scope, body, principal.actor)
        except TemplateInvalid as exc:
            return _invalid(exc)
        except service.CampaignRefused as exc:
            raise HTTPException(409 if "already named" in str(exc) else 422, str(exc)) from exc
        session.commit()
        _saved(request, control, principal, "campaign.create", campaign)
        return campaign_json(campaign)


@router.get("/{campaign_id}")
def read(campaign_id: int, principal: Reader) -> dict[str, Any]:
    """One campaign."""
    with tenant_session(principal.tenant.database) as session:
        campaign = service.settle(session, _campaign(session, campaign_id))
        session.commit()
        return campaign_json(campaign)


@router.put("/{campaign_id}", response_model=None)
def change(
    campaign_id: int, body: service.CampaignIn, request: Request, control: ControlDB, principal: Marketer
) -> Any:
    """Replace a campaign that has not launched (a scheduled one goes back to draft: confirm it again)."""
    scope = tenant_scope(control, principal.tenant)
    with tenant_session(principal.tenant.database) as session:
        _campaign(session, campaign_id)
        try:
            campaign = service.update_campaign(
                session, principal.tenant, scope, campaign_id, body, principal.actor
            )
        except TemplateInvalid as exc:
            return _invalid(exc)
        except service.CampaignRefused as exc:
            raise HTTPException(409, str(exc)) from exc
        session.commit()
        _saved(request, control, principal, "campaign.update", campaign)
        return campaign_json(campaign)


@router.get("/{campaign_id}/confirmation")
def confirm(campaign_id: int, control: ControlDB, principal: Reader) -> dict[str, Any]:
    """What a launch now would do: audience size, reach after suppressions, missing values."""
    scope = tenant_scope(control, principal.tenant)
    with tenant_session(principal.tenant.database) as session:
        campaign = _campaign(session, campaign_id)
        try:
            summary = service.confirmation(session, principal.tenant, scope, campaign)
        except service.CampaignRefused as exc:
            raise HTTPException(409, str(exc)) from exc
        return {"targeted": summary.targeted, "reach": summary.reach, "to_send": summary.to_send,
                "deferred": summary.deferred, "suppressed": summary.suppressed, "missing": summary.missing}  # fmt: skip


@router.post("/{campaign_id}/preview")
def preview(campaign_id: int, body: ProfileIn, control: ControlDB, principal: Reader) -> Any:
    """The message as one profile would get it (422 naming the variable that has no value)."""
    scope = tenant_scope(control, principal.tenant)
    with tenant_session(principal.tenant.database) as session:
        campaign = _campaign(session, campaign_id)
        try:
            ctx = channel_context(control, principal.tenant, get_host(), campaign.channel)
            shown = service.preview(session, scope, ctx, campaign, body.profile_id)
        except MissingValue as exc:
            return JSONResponse({"detail": str(exc), "missing": exc.name}, status_code=422)
        except (service.CampaignRefused, TenancyError) as exc:
            raise HTTPException(409, str(exc)) from exc
        return {
            "profile_id": shown.profile_id,
            "language": shown.language,
            "fields": shown.fields,
            "html": shown.html,
        }


@router.post("/{campaign_id}/test-send", status_code=202, response_model=None)
def test_send(
    campaign_id: int, body: ProfileIn, request: Request, control: ControlDB, principal: Marketer
) -> Any:
    """Send the message now to one chosen profile (not counted in the report); the delivery id."""
    scope = tenant_scope(control, principal.tenant)
    with tenant_session(principal.tenant.database) as session:
        campaign = _campaign(session, campaign_id)
        try:
            delivery_id = service.test_send(session, principal.tenant, scope, campaign, body.profile_id)
        except MissingValue as exc:
            return JSONResponse({"detail": str(exc), "missing": exc.name}, status_code=422)
        except service.CampaignRefused as exc:
            raise HTTPException(409, str(exc)) from exc
        session.commit()
        _saved(request, control, principal, "campaign.test_send", campaign, profile_id=body.profile_id)
        return {"delivery_id": delivery_id}


@router.post("/{campaign_id}/launch", status_code=202, response_model=None)
def launch(
    campaign_id: int, request: Request, control: ControlDB, principal: Marketer, body: LaunchIn | None = None
) -> Any:
    """Launch now, or at the campaign's scheduled time (the deliveries are written by a job)."""
    scope = tenant_scope(control, principal.tenant)
    with tenant_session(principal.tenant.database) as session:
        campaign = _campaign(session, campaign_id)
        try:
            campaign = service.launch(session, principal.tenant, scope, campaign, principal.actor,
                                      skip_missing=bool(body and body.skip_missing))  # fmt: skip
        except service.MissingValues as exc:
            return JSONResponse({"detail": str(exc), "missing": exc.missing}, status_code=422)
        except service.CampaignRefused as exc:
            raise HTTPException(409, str(exc)) from exc
        session.commit()
        _saved(request, control, principal, "campaign.launch", campaign)
        return campaign_json(campaign)


@router.post("/{campaign_id}/cancel", response_model=None)
def cancel(campaign_id: int, request: Request, control: ControlDB, principal: Marketer) -> Any:
    """Cancel a scheduled campaign, or the sends of one still sending."""
    with tenant_session(principal.tenant.database) as session:
        campaign = _campaign(session, campaign_id)
        try:
            campaign = service.cancel(session, campaign, principal.actor)
        except service.CampaignRefused as exc:
            raise HTTPException(409, str(exc)) from exc
        session.commit()
        _saved(request, control, principal, "campaign.cancel", campaign)
        return campaign_json(campaign)


@router.get("/{campaign_id}/report")
def campaign_report(campaign_id: int, principal: Reader) -> dict[str, Any]:
    """The delivery report: targeted, suppressed and failed by reason, sent, delivered, opened,
    clicked, installed, removed, converted, and the same per day (``over_time``)."""
    with tenant_session(principal.tenant.database) as session:
        campaign = service.settle(session, _campaign(session, campaign_id))
        session.commit()
        found = report(session, principal.tenant.timezone, campaign_id=campaign_id)
        return {"campaign_id": campaign_id, "status": campaign.status.value, **found.as_dict()}


@router.get("/{campaign_id}/report.csv")
def campaign_report_csv(campaign_id: int, principal: Reader) -> Response:
    """The report as CSV: a row per day, then the totals."""
    with tenant_session(principal.tenant.database) as session:
        _campaign(session, campaign_id)
        rows = csv_rows(report(session, principal.tenant.timezone, campaign_id=campaign_id))
    headers = {"Content-Disposition": f'attachment; filename="campaign-{campaign_id}-report.csv"'}
    return Response(as_csv(rows), media_type="text/csv", headers=headers)
