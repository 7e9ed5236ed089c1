"""Journeys in the UI: the list, the no-code builder (the flow drawn with counts per step, a side
panel per step), activation, and the report.

The builder's logic (the flow's layout, the panel's inputs, the edits, words) is in
:mod:`web.journey_builder`. The builder's form holds the whole definition as JSON; every edit posts
it with the panel's inputs to ``/edit``, which applies them and the button's action, saves the
result through the journeys service and re-renders the workspace (the problems of a definition
that cannot be saved are shown next to the steps they concern, and the definition stays in the
page until they are fixed). A branch's condition is edited with the audience builder's rule tree,
served by ``/rule/builder`` and ``/rule/preview``.

Seeing journeys, the builder and the report needs ``read_data``; creating, editing, activating,
pausing and archiving ``write_marketing`` (audited as ``journey.create``, ``journey.update``,
``journey.activate``, ``journey.pause``, ``journey.archive``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session
from starlette.datastructures import FormData

from core.audit import service as audit
from core.db.engines import tenant_session
from core.journeys import service
from core.journeys.models import Journey, JourneyStatus
from core.journeys.service import DefinitionInvalid, JourneyIn, JourneyNotFound, JourneyRefused
from core.messages.content import suggestions_of
from core.reporting.report import as_csv, journey_csv_rows, report, step_reports
from core.segments.service import TenantScope, tenant_scope
from core.tenancy.roles import Permission
from web.auth import ControlDB, Principal, client_info, require
from web.csrf import verify_csrf
from web.journey_builder.condition import condition_context, rule_problems
from web.journey_builder.edits import apply_action, apply_panel
from web.journey_builder.flow import layout as flow_layout
from web.journey_builder.flow import problems_by_box, step_title
from web.journey_builder.graph import STEP_TYPES, steps_of
from web.journey_builder.options import load_journey_options
from web.journey_builder.panels import settings_panel, step_panel, trigger_panel
from web.journey_builder.words import goal_words, reentry_words, step_words, trigger_words
from web.routes.pages import page_context
from web.segment_builder.form import rule_from_form
from web.segment_builder.options import Options, load_options
from web.segment_builder.tree import apply_action as apply_rule_action
from web.segment_builder.values import Fields
from web.templating import render

router = APIRouter(prefix="/t/{tenant}/journeys", dependencies=[Depends(verify_csrf)])
Reader = Annotated[Principal, Depends(require(Permission.read_data))]
Marketer = Annotated[Principal, Depends(require(Permission.write_marketing))]

EDITABLE = (JourneyStatus.draft, JourneyStatus.paused)
BADGES = {"draft": "", "active": "ok", "paused": "warn", "archived": "error"}


def _base(principal: Principal) -> str:
    return f"/t/{principal.tenant.slug}/journeys"


def _get_or_404(tenant_db: Session, journey_id: int) -> Journey:
    try:
        return service.get_journey(tenant_db, journey_id)
    except JourneyNotFound as exc:
        raise HTTPException(404, str(exc)) from exc


def _audit(request: Request, session: Session, principal: Principal, action: str, journey: Journey) -> None:
    audit.record(session, actor=principal.actor, action=action, tenant_id=principal.tenant.id,
                 target=f"journey {journey.id}", detail={"name": journey.name}, **client_info(request))  # fmt: skip
    session.commit()


# --- the list and new journeys ------------------------------------------------------------------
@router.get("", include_in_schema=False)
def journeys_page(request: Request, session: ControlDB, principal: Reader, archived: str = "") -> Response:
    """Every journey: its status, its trigger in words, how many entered, are in it, converted."""
    scope = tenant_scope(session, principal.tenant)
    with tenant_session(principal.tenant.database) as tenant_db:
        options = load_options(tenant_db, scope, None)
        rows = []
        for journey in service.list_journeys(tenant_db):
            assert journey.id is not None
            rows.append({"journey": journey, "trigger": trigger_words(journey.definition.get("trigger"), options),
                         "summary": service.journey_summary(tenant_db, journey.id)})  # fmt: skip
    context = page_context(request, session, principal, section="journeys", rows=rows, base=_base(principal),
                           badges=BADGES, archived=archived)  # fmt: skip
    return render(request, "journeys/list.html", context)


@router.get("/new", include_in_schema=False)
def new_journey_page(request: Request, session: ControlDB, principal: Marketer) -> Response:
    """The form naming a new journey."""
    context = page_context(request, session, principal, section="journeys", base=_base(principal), name="",
                           description="", error=None)  # fmt: skip
    return render(request, "journeys/new.html", context)


def _create(request: Request, session: Session, principal: Principal, form: FormData) -> Response:
    f = Fields(form)
    name, description = f.text("name").strip(), f.text("description").strip()
    scope = tenant_scope(session, principal.tenant)
    error = None
    with tenant_session(principal.tenant.database) as tenant_db:
        try:
            data = JourneyIn(name=name, description=description, definition=service.empty_definition())
            journey = service.create_journey(tenant_db, scope, data, principal.actor)
            tenant_db.commit()
        except ValidationError as exc:
            error = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        except (DefinitionInvalid, JourneyRefused) as exc:
            tenant_db.rollback()
            error = str(exc)
    if error is not None:
        context = page_context(request, session, principal, section="journeys", base=_base(principal), name=name,
                               description=description, error=f"Not created: {error}")  # fmt: skip
        return render(request, "journeys/new.html", context, status_code=422)
    _audit(request, session, principal, "journey.create", journey)
    return RedirectResponse(f"{_base(principal)}/{journey.id}?open=trigger", status_code=303)


@router.post("/new", include_in_schema=False)
async def create_journey(request: Request, session: ControlDB, principal: Marketer) -> Response:
    """Create a draft journey with an empty definition (audited) and open it in the builder."""
    form = await request.form()
    return await run_in_threadpool(_create, request, session, principal, form)


# --- the builder ----------------------------------------------------------------------------------
@dataclass
class Draft:
    """What the builder shows: the definition being edited (saved or not) and how the last save went."""

    definition: dict[str, Any]
    name: str
    description: str
    panel: str = ""
    problems: list[tuple[str, str]] = field(default_factory=list)
    saved: bool = True
    just_saved: bool = False
    error: str | None = None

    @classmethod
    def of(cls, journey: Journey, panel: str = "") -> Draft:
        """The journey as stored."""
        return cls(json.loads(json.dumps(journey.definition)), journey.name, journey.description, panel)


def _panel(draft: Draft, options: Options, by_box: dict[str, list[str]]) -> dict[str, Any] | None:
    definition = draft.definition
    if draft.panel == "trigger":
        return {**trigger_panel(definition.get("trigger"), options), "key": "trigger",
                "problems": by_box.get("trigger", [])}  # fmt: skip
    if draft.panel == "settings":
        return {**settings_panel(definition), "key": "settings", "problems": by_box.get("settings", [])}
    if draft.panel in steps_of(definition):
        return step_panel(definition, draft.panel, options, by_box)
    return None


def _workspace_context(
    request: Request,
    session: Session,
    principal: Principal,
    tenant_db: Session,
    scope: TenantScope,
    journey: Journey,
    draft: Draft,
    options: Options | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Everything the builder's page and workspace show."""
    assert journey.id is not None
    options = options or load_journey_options(tenant_db, scope)
    live = journey.status != JourneyStatus.draft
    counts = service.step_counts(tenant_db, journey.id) if live else {}
    reports = step_reports(tenant_db, journey.id, principal.tenant.timezone) if live else {}
    by_box = problems_by_box(draft.problems)
    panel = _panel(draft, options, by_box)
    if panel and panel.get("type") == "send" and (channel := scope.channels.get(panel["channel"])):
        panel["suggestions"] = suggestions_of(session, principal.tenant, channel)
    base = _base(principal)
    condition = None
    if panel and panel.get("type") == "branch":
        rule = steps_of(draft.definition)[draft.panel].get("rule")
        condition = condition_context(tenant_db, scope, options, rule, f"{base}/{journey.id}/rule",
                                      rule_problems(draft.problems, draft.panel))  # fmt: skip
    can_write = principal.can(Permission.write_marketing)
    definition = draft.definition
    return page_context(
        request, session, principal, section="journeys", journey=journey, base=base, badges=BADGES,
        page_url=f"{base}/{journey.id}", edit_url=f"{base}/{journey.id}/edit", draft=draft,
        definition_json=json.dumps(definition), can_write=can_write,
        editable=can_write and journey.status in EDITABLE, live=live,
        summary=service.journey_summary(tenant_db, journey.id) if live else None,
        flow=flow_layout(definition, options, by_box, counts, reports), problems=by_box, panel=panel,
        panel_key=draft.panel, condition=condition, step_types=STEP_TYPES, options=options,
        trigger_words=trigger_words(definition.get("trigger"), options),
        goal_words=goal_words(definition.get("goal")), reentry_words=reentry_words(definition.get("reentry")),
        **extra,
    )  # fmt: skip


@router.get("/{journey_id:int}", include_in_schema=False)
def builder_page(
    request: Request, journey_id: int, session: ControlDB, principal: Reader, open: str = ""
) -> Response:
    """The builder: the journey drawn as a flow, and the panel of the trigger or step ``open``."""
    scope = tenant_scope(session, principal.tenant)
    with tenant_session(principal.tenant.database) as tenant_db:
        journey = _get_or_404(tenant_db, journey_id)
        draft = Draft.of(journey, open)
        context = _workspace_context(request, session, principal, tenant_db, scope, journey, draft)
    return render(request, "journeys/builder.html", context)


def _posted_definition(f: Fields, journey: Journey) -> dict[str, Any]:
    try:
        posted = json.loads(f.text("definition"))
    except ValueError:
        posted = None
    return posted if isinstance(posted, dict) else json.loads(json.dumps(journey.definition))


def _save(
    request: Request, session: Session, principal: Principal, tenant_db: Session, scope: TenantScope,
    journey: Journey, draft: Draft,
) -> Journey:  # fmt: skip
    """Save the draft if it changed (audited); the problems that stop it are kept on the draft."""
    stored = (journey.definition, journey.name, journey.description)
    if (draft.definition, draft.name, draft.description) == stored:
        return journey
    assert journey.id is not None
    try:
        data = JourneyIn(name=draft.name, description=draft.description, definition=draft.definition)
        saved = service.update_journey(tenant_db, scope, journey.id, data, principal.actor)
        tenant_db.commit()
    except ValidationError as exc:
        draft.problems += [(".".join(map(str, e["loc"])), str(e["msg"])) for e in exc.errors()]
    except DefinitionInvalid as exc:
        tenant_db.rollback()
        draft.problems += list(exc.problems)
    except JourneyRefused as exc:
        tenant_db.rollback()
        draft.error = f"Not saved: {exc}"
    else:
        _audit(request, session, principal, "journey.update", saved)
        draft.definition = json.loads(json.dumps(saved.definition))
        draft.just_saved = True
        return saved
    draft.saved = False
    return journey


def _edit(
    request: Request, session: Session, principal: Principal, journey_id: int, form: FormData
) -> Response:
    f = Fields(form)
    scope = tenant_scope(session, principal.tenant)
    with tenant_session(principal.tenant.database) as tenant_db:
        journey = _get_or_404(tenant_db, journey_id)
        if journey.status not in EDITABLE:
            raise HTTPException(409, f"The journey is {journey.status}: pause it to change it.")
        options = load_journey_options(tenant_db, scope)
        edit = apply_panel(
            _posted_definition(f, journey), form, scope.channels, scope.conditions, options.segments
        )
        edit = apply_action(edit, f.text("action"), form, scope.channels)
        draft = Draft(edit.definition, f.text("name", journey.name).strip(),
                      f.text("description", journey.description).strip(), edit.panel, list(edit.problems))  # fmt: skip
        journey = _save(request, session, principal, tenant_db, scope, journey, draft)
        context = _workspace_context(request, session, principal, tenant_db, scope, journey, draft, options)
    hx = bool(request.headers.get("hx-request"))
    status = 200 if draft.saved else 422
    return render(
        request, "journeys/_workspace.html" if hx else "journeys/builder.html", context, status_code=status
    )


@router.post("/{journey_id:int}/edit", include_in_schema=False)
async def edit_journey(
    request: Request, journey_id: int, session: ControlDB, principal: Marketer
) -> Response:
    """Apply one edit of the builder (the panel's inputs, then the button's action) and save it."""
    form = await request.form()
    return await run_in_threadpool(_edit, request, session, principal, journey_id, form)


# --- a branch's condition: the audience builder's rule tree ---------------------------------------
def _rule(request: Request, session: Session, principal: Principal, journey_id: int, form: FormData,
          template: str) -> Response:  # fmt: skip
    f = Fields(form)
    scope = tenant_scope(session, principal.tenant)
    rule = rule_from_form(form, scope.conditions)
    with tenant_session(principal.tenant.database) as tenant_db:
        _get_or_404(tenant_db, journey_id)
        options = load_options(tenant_db, scope, None)
        if f.text("action"):
            rule = apply_rule_action(rule, f.text("action"), options)
        base = f"{_base(principal)}/{journey_id}/rule"
        context = {"principal": principal, **condition_context(tenant_db, scope, options, rule, base)}
    return render(request, template, context)


@router.post("/{journey_id:int}/rule/builder", include_in_schema=False)
async def rule_builder(request: Request, journey_id: int, session: ControlDB, principal: Reader) -> Response:
    """Apply one edit to a branch's condition and re-render its rule tree and preview."""
    form = await request.form()
    return await run_in_threadpool(_rule, request, session, principal, journey_id, form,
                                   "segments/_builder_response.html")  # fmt: skip


@router.post("/{journey_id:int}/rule/preview", include_in_schema=False)
async def rule_preview(request: Request, journey_id: int, session: ControlDB, principal: Reader) -> Response:
    """How many profiles a branch's condition matches now (they would go down "yes")."""
    form = await request.form()
    return await run_in_threadpool(_rule, request, session, principal, journey_id, form,
                                   "segments/_preview_response.html")  # fmt: skip


# --- activation -------------------------------------------------------------------------------------
def _change_status(
    request: Request, session: Session, principal: Principal, journey_id: int, verb: str
) -> Response:
    scope = tenant_scope(session, principal.tenant)
    with tenant_session(principal.tenant.database) as tenant_db:
        journey = _get_or_404(tenant_db, journey_id)
        try:
            if verb == "activate":
                changed = service.activate(tenant_db, principal.tenant, scope, journey, principal.actor)
            elif verb == "pause":
                changed = service.pause(tenant_db, journey, principal.actor)
            else:
                changed = service.archive(tenant_db, journey, principal.actor)
            tenant_db.commit()
        except DefinitionInvalid as exc:
            tenant_db.rollback()
            journey = _get_or_404(tenant_db, journey_id)
            draft = Draft.of(journey)
            draft.problems = list(exc.problems)
            message = "Not activated: fix the problems marked on the flow."
            context = _workspace_context(
                request, session, principal, tenant_db, scope, journey, draft, error=message
            )
            return render(request, "journeys/builder.html", context, status_code=422)
        except JourneyRefused as exc:
            tenant_db.rollback()
            journey = _get_or_404(tenant_db, journey_id)
            context = _workspace_context(request, session, principal, tenant_db, scope, journey, Draft.of(journey),
                                         error=f"Not {verb}d: {exc}")  # fmt: skip
            return render(request, "journeys/builder.html", context, status_code=409)
    _audit(request, session, principal, f"journey.{verb}", changed)
    if verb == "archive":
        return RedirectResponse(f"{_base(principal)}?archived={quote(changed.name)}", status_code=303)
    return RedirectResponse(f"{_base(principal)}/{journey_id}", status_code=303)


@router.post("/{journey_id:int}/activate", include_in_schema=False)
def activate_journey(request: Request, journey_id: int, session: ControlDB, principal: Marketer) -> Response:
    """Activate a draft or paused journey (its definition checked first; audited)."""
    return _change_status(request, session, principal, journey_id, "activate")


@router.post("/{journey_id:int}/pause", include_in_schema=False)
def pause_journey(request: Request, journey_id: int, session: ControlDB, principal: Marketer) -> Response:
    """Pause an active journey: nobody enters, entries wait where they are (audited)."""
    return _change_status(request, session, principal, journey_id, "pause")


@router.post("/{journey_id:int}/archive", include_in_schema=False)
def archive_journey(request: Request, journey_id: int, session: ControlDB, principal: Marketer) -> Response:
    """Archive a journey for good (audited)."""
    return _change_status(request, session, principal, journey_id, "archive")


# --- the report ---------------------------------------------------------------------------------------
@router.get("/{journey_id:int}/report", include_in_schema=False)
def report_page(request: Request, journey_id: int, session: ControlDB, principal: Reader) -> Response:
    """The journey's delivery report: totals, each send step's, and its entries by how they ended."""
    scope = tenant_scope(session, principal.tenant)
    zone = principal.tenant.timezone
    with tenant_session(principal.tenant.database) as tenant_db:
        journey = _get_or_404(tenant_db, journey_id)
        options = load_options(tenant_db, scope, None)
        total = report(tenant_db, zone, journey_id=journey_id)
        per_step = step_reports(tenant_db, journey_id, zone)
        summary = service.journey_summary(tenant_db, journey_id)
    steps = steps_of(journey.definition)
    sends = [{"key": key, "title": step_title(step), "words": step_words(step, options),
              "report": per_step.get(key)} for key, step in steps.items()
             if isinstance(step, dict) and step.get("type") == "send"]  # fmt: skip
    context = page_context(request, session, principal, section="journeys", journey=journey, base=_base(principal),
                           badges=BADGES, total=total, sends=sends, summary=summary)  # fmt: skip
    return render(request, "journeys/report.html", context)


@router.get("/{journey_id:int}/report.csv", include_in_schema=False)
def report_csv(request: Request, journey_id: int, session: ControlDB, principal: Reader) -> Response:
    """The report as CSV: per day and in total, for the whole journey and each send step (audited)."""
    with tenant_session(principal.tenant.database) as tenant_db:
        journey = _get_or_404(tenant_db, journey_id)
        rows = journey_csv_rows(tenant_db, journey_id, principal.tenant.timezone)
    audit.record(session, actor=principal.actor, action="journey.export", tenant_id=principal.tenant.id,
                 target=f"journey {journey_id}", detail={"name": journey.name}, **client_info(request))  # fmt: skip
    session.commit()
    headers = {"Content-Disposition": f'attachment; filename="journey-{journey_id}-report.csv"'}
    return Response(as_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)
