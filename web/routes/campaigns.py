"""Campaigns in the UI: the list, the form, the detail page with preview and test send, the review
before launch, and the delivery report.

The form's logic is in :mod:`web.campaign_pages.form`: changing the channel or adding a language
posts the whole form to ``/editor``, which renders it again with the channel's fields and what was
typed. Seeing campaigns, previews, the review and the report needs ``read_data``; saving, test
sends, launching and cancelling ``write_marketing``. Each change is audited (``campaign.create``,
``campaign.update``, ``campaign.test_send``, ``campaign.launch``, ``campaign.cancel``), and so is
the report's CSV export (``campaign.export``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, select
from starlette.datastructures import FormData

from core.audit import service as audit
from core.campaigns import service
from core.campaigns.models import Campaign
from core.db.base import utcnow
from core.db.engines import tenant_session
from core.delivery.models import Delivery
from core.messages.content import fields_of, suggestions_of
from core.messages.personalization import MissingValue, TemplateInvalid
from core.plugins import get_host
from core.profiles.models import Profile
from core.profiles.service import ProfileNotFound, get_profile, pick
from core.reporting.report import as_csv, csv_rows, report
from core.segments.models import Segment
from core.segments.service import TenantScope, active_segments, tenant_scope
from core.tenancy.errors import TenancyError
from core.tenancy.plugin_settings import channel_context
from core.tenancy.roles import Permission
from web.auth import ControlDB, Principal, client_info, require
from web.campaign_pages import display
from web.campaign_pages.form import (
    CampaignForm,
    FormInvalid,
    Problems,
    apply_action,
    as_utc,
    from_campaign,
    read_form,
    template_problems,
    to_campaign_in,
)
from web.csrf import verify_csrf
from web.routes.pages import page_context
from web.templating import render

router = APIRouter(prefix="/t/{tenant}/campaigns", dependencies=[Depends(verify_csrf)])
Reader = Annotated[Principal, Depends(require(Permission.read_data))]
Marketer = Annotated[Principal, Depends(require(Permission.write_marketing))]

SEARCH_LIMIT = 10


def _base(principal: Principal) -> str:
    return f"/t/{principal.tenant.slug}/campaigns"


def _audit(request: Request, control: Session, principal: Principal, action: str, campaign: Campaign,
           **detail: Any) -> None:  # fmt: skip
    audit.record(control, actor=principal.actor, action=action, tenant_id=principal.tenant.id,
                 target=f"campaign {campaign.id}", detail={"name": campaign.name, **detail},
                 **client_info(request))  # fmt: skip
    control.commit()


def _get_or_404(tenant_db: Session, campaign_id: int) -> Campaign:
    try:
        return service.get_campaign(tenant_db, campaign_id)
    except service.CampaignNotFound as exc:
        raise HTTPException(404, str(exc)) from exc


def _channel_labels(scope: TenantScope) -> dict[str, str]:
    return {key: channel.label for key, channel in sorted(scope.channels.items())}


def _redirect(request: Request, url: str) -> Response:
    if request.headers.get("hx-request"):
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


# --- the list -----------------------------------------------------------------------------------
@router.get("", include_in_schema=False)
def campaigns_page(request: Request, session: ControlDB, principal: Reader) -> Response:
    """Every campaign: channel, segment, status, when it goes or went, and how much it sent."""
    scope = tenant_scope(session, principal.tenant)
    with tenant_session(principal.tenant.database) as tenant_db:
        campaigns = service.list_campaigns(tenant_db)
        segments = {s.id: s.name for s in tenant_db.exec(select(Segment))}
        figures = display.figures(tenant_db, [c.id for c in campaigns if c.id is not None])
    context = page_context(
        request, session, principal, section="campaigns", campaigns=campaigns, segments=segments,
        figures=figures, labels=_channel_labels(scope), base=_base(principal), zone=principal.tenant.timezone,
        when=display.when, badges=display.BADGES, empty=display.Figures(),
    )  # fmt: skip
    return render(request, "campaigns/list.html", context)


# --- the form -----------------------------------------------------------------------------------
def _form_context(
    request: Request,
    session: Session,
    principal: Principal,
    form: CampaignForm,
    campaign: Campaign | None,
    problems: Problems | None = None,
    scope: TenantScope | None = None,
) -> dict[str, Any]:
    scope = scope or tenant_scope(session, principal.tenant)
    labels = _channel_labels(scope)
    if form.channel not in labels and labels and campaign is None:
        form.channel = next(iter(labels))
    channel = scope.channels.get(form.channel)
    with tenant_session(principal.tenant.database) as tenant_db:
        segments = active_segments(tenant_db)
    base = _base(principal)
    return page_context(
        request, session, principal, section="campaigns", form=form, campaign=campaign, base=base,
        problems=problems or Problems(), segments=segments, labels=labels,
        fields=fields_of(channel) if channel else [], zone=principal.tenant.timezone,
        suggestions=suggestions_of(session, principal.tenant, channel) if channel else {},
        save_url=f"{base}/{campaign.id}/edit" if campaign else f"{base}/new",
    )  # fmt: skip


@router.get("/new", include_in_schema=False)
def new_campaign_page(
    request: Request, session: ControlDB, principal: Marketer, segment: int = 0
) -> Response:
    """The form of a new campaign (``segment`` preselects the audience)."""
    form = CampaignForm(segment_id=str(segment) if segment else "")
    return render(request, "campaigns/form.html", _form_context(request, session, principal, form, None))


@router.get("/{campaign_id:int}/edit", include_in_schema=False)
def edit_campaign_page(
    request: Request, campaign_id: int, session: ControlDB, principal: Marketer
) -> Response:
    """The form of a campaign that has not launched."""
    with tenant_session(principal.tenant.database) as tenant_db:
        campaign = _get_or_404(tenant_db, campaign_id)
    if campaign.status not in service.EDITABLE:
        return RedirectResponse(f"{_base(principal)}/{campaign_id}", status_code=303)
    form = from_campaign(campaign, principal.tenant.timezone)
    return render(request, "campaigns/form.html", _form_context(request, session, principal, form, campaign))


@router.post("/editor", include_in_schema=False)
async def editor(request: Request, session: ControlDB, principal: Marketer) -> Response:
    """The form again after an edit of its shape (``action``: add or remove a language; a new channel)."""
    posted = await request.form()
    form = apply_action(read_form(posted), str(posted.get("action") or ""))
    campaign_id = str(posted.get("campaign_id") or "")
    campaign = None
    if campaign_id.isdigit():
        with tenant_session(principal.tenant.database) as tenant_db:
            campaign = _get_or_404(tenant_db, int(campaign_id))
    context = _form_context(request, session, principal, form, campaign)
    return render(request, "campaigns/_editor.html", context)


def _save(
    request: Request, session: Session, principal: Principal, posted: FormData, campaign_id: int | None
) -> Response:
    form = read_form(posted)
    scope = tenant_scope(session, principal.tenant)
    channel = scope.channels.get(form.channel)
    names = [name for name, _, _ in fields_of(channel)] if channel else []
    with tenant_session(principal.tenant.database) as tenant_db:
        current = _get_or_404(tenant_db, campaign_id) if campaign_id else None
        try:
            data = to_campaign_in(form, names, principal.tenant.timezone, utcnow())
            if current is None:
                saved = service.create_campaign(tenant_db, principal.tenant, scope, data, principal.actor)
            else:
                saved = service.update_campaign(tenant_db, principal.tenant, scope, current.id or 0, data,
                                                principal.actor)  # fmt: skip
        except FormInvalid as exc:
            problems = exc.problems
        except TemplateInvalid as exc:
            problems = template_problems(exc, form)
        except service.CampaignRefused as exc:
            problems = Problems(general=[str(exc)])
        else:
            tenant_db.commit()
            action = "campaign.create" if current is None else "campaign.update"
            _audit(
                request, session, principal, action, saved, channel=saved.channel, segment_id=saved.segment_id
            )
            return _redirect(request, f"{_base(principal)}/{saved.id}")
        tenant_db.rollback()
    context = _form_context(request, session, principal, form, current, problems, scope)
    return render(request, "campaigns/form.html", context, status_code=422)


@router.post("/new", include_in_schema=False)
async def create_campaign(request: Request, session: ControlDB, principal: Marketer) -> Response:
    """Save a new draft campaign (audited) and show it; the form again with its problems otherwise."""
    posted = await request.form()
    return await run_in_threadpool(_save, request, session, principal, posted, None)


@router.post("/{campaign_id:int}/edit", include_in_schema=False)
async def update_campaign(
    request: Request, campaign_id: int, session: ControlDB, principal: Marketer
) -> Response:
    """Save changes to a campaign that has not launched (a scheduled one must be confirmed again)."""
    posted = await request.form()
    return await run_in_threadpool(_save, request, session, principal, posted, campaign_id)


# --- the detail page, preview and test send ----------------------------------------------------------
def _report_context(tenant_db: Session, principal: Principal, campaign: Campaign) -> dict[str, Any]:
    """The campaign settled (completed once nothing is queued) and its report."""
    campaign = service.settle(tenant_db, campaign)
    tenant_db.commit()
    found = report(tenant_db, principal.tenant.timezone, campaign_id=campaign.id)
    return {"campaign": campaign, "report": found, "live": campaign.status in display.LIVE,
            "launched": campaign.status not in service.EDITABLE}  # fmt: skip


@router.get("/{campaign_id:int}", include_in_schema=False)
def campaign_page(request: Request, campaign_id: int, session: ControlDB, principal: Reader) -> Response:
    """One campaign: what it says, to whom, when; preview and test send; its report once launched."""
    scope = tenant_scope(session, principal.tenant)
    with tenant_session(principal.tenant.database) as tenant_db:
        campaign = _get_or_404(tenant_db, campaign_id)
        segment = tenant_db.get(Segment, campaign.segment_id)
        reported = _report_context(tenant_db, principal, campaign)
    context = page_context(
        request, session, principal, section="campaigns", segment=segment, base=_base(principal),
        labels=_channel_labels(scope), zone=principal.tenant.timezone, local=display.local,
        badges=display.BADGES, editable=campaign.status in service.EDITABLE, **reported,
    )  # fmt: skip
    return render(request, "campaigns/detail.html", context)


@router.get("/{campaign_id:int}/report", include_in_schema=False)
def report_fragment(request: Request, campaign_id: int, principal: Reader) -> Response:
    """The report alone (polled while the campaign sends; the page reloads once it is done)."""
    with tenant_session(principal.tenant.database) as tenant_db:
        context = _report_context(tenant_db, principal, _get_or_404(tenant_db, campaign_id))
    context.update(principal=principal, base=_base(principal), badges=display.BADGES, oob=True)
    response = render(request, "campaigns/_report.html", context)
    if not context["live"] and request.headers.get("hx-request"):
        # Only a live report polls: it has just finished, and the page's actions changed with it.
        response.headers["HX-Refresh"] = "true"
    return response


@router.get("/{campaign_id:int}/profiles", include_in_schema=False)
def profiles_fragment(request: Request, campaign_id: int, principal: Reader, q: str = "") -> Response:
    """Profiles to preview the campaign for, found by id, email or name."""
    with tenant_session(principal.tenant.database) as tenant_db:
        campaign = _get_or_404(tenant_db, campaign_id)
        found = pick(tenant_db, q, limit=SEARCH_LIMIT)
    context = {
        "principal": principal,
        "campaign": campaign,
        "base": _base(principal),
        "profiles": found,
        "q": q,
    }
    return render(request, "campaigns/_profiles.html", context)


@router.get("/{campaign_id:int}/preview", include_in_schema=False)
def preview_fragment(
    request: Request, campaign_id: int, session: ControlDB, principal: Reader, profile_id: str = ""
) -> Response:
    """The message as one profile would get it: language, fields, the channel's rendering."""
    scope = tenant_scope(session, principal.tenant)
    shown, missing, error = None, None, None
    with tenant_session(principal.tenant.database) as tenant_db:
        campaign = _get_or_404(tenant_db, campaign_id)
        try:
            profile = get_profile(tenant_db, profile_id)
            ctx = channel_context(session, principal.tenant, get_host(), campaign.channel)
            shown = service.preview(tenant_db, scope, ctx, campaign, profile.id)
        except MissingValue as exc:
            missing = exc
        except (ProfileNotFound, service.CampaignRefused, TenancyError, TemplateInvalid) as exc:
            error = str(exc)
    context = {"principal": principal, "campaign": campaign, "base": _base(principal), "shown": shown,
               "missing": missing, "error": error, "profile_id": profile_id, "perm": Permission}  # fmt: skip
    return render(request, "campaigns/_preview.html", context, status_code=422 if missing or error else 200)


def _delivery_context(tenant_db: Session, principal: Principal, campaign: Campaign, delivery_id: int) -> dict:
    delivery = tenant_db.get(Delivery, delivery_id)
    if delivery is None or delivery.campaign_id != campaign.id or not delivery.test:
        raise HTTPException(404, f"No test send {delivery_id} of this campaign.")
    return {"principal": principal, "campaign": campaign, "base": _base(principal), "delivery": delivery}


@router.post("/{campaign_id:int}/test-send", include_in_schema=False)
def test_send(
    request: Request,
    campaign_id: int,
    session: ControlDB,
    principal: Marketer,
    profile_id: Annotated[str, Form(max_length=40)],
) -> Response:
    """Send the message now to one profile (not counted in the report; audited); its delivery's state."""
    scope = tenant_scope(session, principal.tenant)
    with tenant_session(principal.tenant.database) as tenant_db:
        campaign = _get_or_404(tenant_db, campaign_id)
        try:
            delivery_id = service.test_send(tenant_db, principal.tenant, scope, campaign, profile_id)
        except MissingValue as exc:
            error = f"Not sent: {exc.name} has no value for this profile ({exc.language}, {exc.field})."
        except (service.CampaignRefused, TemplateInvalid) as exc:
            error = f"Not sent: {exc}"
        else:
            tenant_db.commit()
            _audit(request, session, principal, "campaign.test_send", campaign, profile_id=profile_id,
                   delivery_id=delivery_id)  # fmt: skip
            context = _delivery_context(tenant_db, principal, campaign, delivery_id)
            return render(request, "campaigns/_test_send.html", context)
        tenant_db.rollback()
    return render(request, "campaigns/_test_send.html", {"error": error}, status_code=422)


@router.get("/{campaign_id:int}/deliveries/{delivery_id:int}", include_in_schema=False)
def test_delivery_fragment(
    request: Request, campaign_id: int, delivery_id: int, principal: Reader
) -> Response:
    """A test send's state (polled until it is no longer queued)."""
    with tenant_session(principal.tenant.database) as tenant_db:
        campaign = _get_or_404(tenant_db, campaign_id)
        context = _delivery_context(tenant_db, principal, campaign, delivery_id)
    return render(request, "campaigns/_test_send.html", context)


# --- review, launch, cancel -------------------------------------------------------------------------
def _review(
    request: Request,
    session: Session,
    principal: Principal,
    campaign_id: int,
    error: str | None = None,
    status: int = 200,
) -> Response:
    scope = tenant_scope(session, principal.tenant)
    summary, refused = None, None
    with tenant_session(principal.tenant.database) as tenant_db:
        campaign = _get_or_404(tenant_db, campaign_id)
        segment = tenant_db.get(Segment, campaign.segment_id)
        if campaign.status in service.EDITABLE:
            try:
                summary = service.confirmation(tenant_db, principal.tenant, scope, campaign)
            except service.CampaignRefused as exc:
                refused = str(exc)
        affected = sorted({pid for ids in (summary.missing.values() if summary else []) for pid in ids})
        names = {
            p.id: p.display_name for p in tenant_db.exec(select(Profile).where(col(Profile.id).in_(affected)))
        }
    later = campaign.scheduled_at is not None and as_utc(campaign.scheduled_at) > utcnow()
    context = page_context(
        request, session, principal, section="campaigns", campaign=campaign, segment=segment, summary=summary,
        refused=refused, error=error, names=names, base=_base(principal), labels=_channel_labels(scope),
        zone=principal.tenant.timezone, local=display.local, later=later, badges=display.BADGES,
    )  # fmt: skip
    return render(request, "campaigns/review.html", context, status_code=status)


@router.get("/{campaign_id:int}/review", include_in_schema=False)
def review_page(request: Request, campaign_id: int, session: ControlDB, principal: Reader) -> Response:
    """What a launch now would do: audience, reach after suppressions, quiet hours, missing values."""
    return _review(request, session, principal, campaign_id)


@router.post("/{campaign_id:int}/launch", include_in_schema=False)
def launch(
    request: Request,
    campaign_id: int,
    session: ControlDB,
    principal: Marketer,
    skip_missing: Annotated[str, Form()] = "",
) -> Response:
    """Launch now, or confirm the schedule (audited); the review again if the launch is refused."""
    scope = tenant_scope(session, principal.tenant)
    with tenant_session(principal.tenant.database) as tenant_db:
        campaign = _get_or_404(tenant_db, campaign_id)
        try:
            campaign = service.launch(tenant_db, principal.tenant, scope, campaign, principal.actor,
                                      skip_missing=skip_missing == "on")  # fmt: skip
        except service.MissingValues:
            tenant_db.rollback()
            message = (
                "Not launched: some profiles have no value for a variable the message uses. "
                "Fix the data, or tick “launch without them”."
            )
            return _review(request, session, principal, campaign_id, error=message, status=422)
        except service.CampaignRefused as exc:
            tenant_db.rollback()
            return _review(request, session, principal, campaign_id, error=f"Not launched: {exc}", status=409)
        tenant_db.commit()
    _audit(request, session, principal, "campaign.launch", campaign, status=campaign.status.value,
           skip_missing=skip_missing == "on")  # fmt: skip
    return RedirectResponse(f"{_base(principal)}/{campaign_id}", status_code=303)


@router.post("/{campaign_id:int}/cancel", include_in_schema=False)
def cancel(request: Request, campaign_id: int, session: ControlDB, principal: Marketer) -> Response:
    """Cancel a campaign before it goes, or the sends it has not made yet (audited)."""
    with tenant_session(principal.tenant.database) as tenant_db:
        campaign = _get_or_404(tenant_db, campaign_id)
        was = campaign.status
        try:
            campaign = service.cancel(tenant_db, campaign, principal.actor)
        except service.CampaignRefused as exc:
            raise HTTPException(409, str(exc)) from exc
        tenant_db.commit()
    _audit(request, session, principal, "campaign.cancel", campaign, was=was.value)
    return RedirectResponse(f"{_base(principal)}/{campaign_id}", status_code=303)


@router.get("/{campaign_id:int}/report.csv", include_in_schema=False)
def report_csv(request: Request, campaign_id: int, session: ControlDB, principal: Reader) -> Response:
    """The report as CSV: a row per day with every moment, then the totals (audited)."""
    with tenant_session(principal.tenant.database) as tenant_db:
        campaign = _get_or_404(tenant_db, campaign_id)
        rows = csv_rows(report(tenant_db, principal.tenant.timezone, campaign_id=campaign_id))
    _audit(request, session, principal, "campaign.export", campaign)
    headers = {"Content-Disposition": f'attachment; filename="campaign-{campaign_id}-report.csv"'}
    return Response(as_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)
