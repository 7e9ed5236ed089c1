"""Loyalty in the UI: the programs, a program's page (dashboard, tiers, earning rules), its settings
form, and the earning-rule editor with "test this rule on a profile".

The forms' logic is in :mod:`web.loyalty_pages`. The rule editor posts its whole form to
``/rules/editor`` when its shape changes (another kind, a filter added or removed, an operator
changed); its profile condition is the audience builder, served by ``/rules/condition/builder``
and ``/rules/condition/preview`` as a journey's branch is. A dry run posts the same form with a
profile and, optionally, the event's properties; it records nothing.

Seeing programs needs ``read_data`` (a dry run too, as in the API); creating and changing
programs, tiers and rules ``write_marketing``, each change audited with the API's actions
(``loyalty.program.create``, ``loyalty.tier.update``, ``loyalty.rule.active``, ...).
"""

from __future__ import annotations

from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session
from starlette.datastructures import FormData

from core.db.engines import tenant_session
from core.loyalty import dashboard, programs
from core.loyalty.dry_run import dry_run
from core.loyalty.ledger import LoyaltyError
from core.loyalty.models import EarningRule, LoyaltyProgram, RuleStatus
from core.profiles.service import ProfileNotFound, get_profile, pick
from core.segments.rules import RuleError
from core.segments.service import tenant_scope
from core.tenancy.roles import Permission
from web.auditing import audit_change
from web.auth import ControlDB, Principal, require
from web.campaign_pages.form import FormInvalid, Problems
from web.csrf import verify_csrf
from web.loyalty_pages.access import program_or_404
from web.loyalty_pages.dry_run import SEARCH_LIMIT, PropertiesInvalid, parse_properties
from web.loyalty_pages.program_form import ProgramForm, blank_form, form_of, read_form, to_program_in
from web.loyalty_pages.program_page import program_view
from web.loyalty_pages.rule_editor import editor_view, fields_view
from web.loyalty_pages.rule_form import (
    RuleForm,
    apply_action,
    from_rule,
    read_rule_form,
    rule_error_problems,
    to_rule_in,
)
from web.loyalty_pages.tier_form import NEW, TierForm, read_tier_form, to_tier_in
from web.routes.pages import page_context
from web.segment_builder.form import rule_from_form
from web.segment_builder.options import load_options
from web.segment_builder.tree import apply_action as apply_rule_action
from web.segment_builder.values import Fields
from web.templating import render

router = APIRouter(prefix="/t/{tenant}/loyalty", dependencies=[Depends(verify_csrf)])
Reader = Annotated[Principal, Depends(require(Permission.read_data))]
Marketer = Annotated[Principal, Depends(require(Permission.write_marketing))]
PROGRAM = "/programs/{program_id:int}"
RULES = PROGRAM + "/rules"


def _base(principal: Principal) -> str:
    return f"/t/{principal.tenant.slug}/loyalty"


def _program_url(principal: Principal, program_id: int) -> str:
    return f"{_base(principal)}/programs/{program_id}"


def _rules_url(principal: Principal, program_id: int) -> str:
    return f"{_program_url(principal, program_id)}/rules"


def _rule_or_404(tenant_db: Session, program_id: int, rule_id: int) -> EarningRule:
    try:
        return programs.get_rule(tenant_db, program_id, rule_id)
    except programs.RuleNotFound as exc:
        raise HTTPException(404, str(exc)) from exc


def _zone(principal: Principal) -> ZoneInfo:
    return ZoneInfo(principal.tenant.timezone)


# --- the programs ---------------------------------------------------------------------------------
@router.get("", include_in_schema=False)
def programs_page(request: Request, session: ControlDB, principal: Reader) -> Response:
    """Every program: its currency, members and the points they hold."""
    with tenant_session(principal.tenant.database) as tenant_db:
        found = programs.list_programs(tenant_db, include_archived=True)
        rows = [(p, dashboard.totals(tenant_db, p.id)) for p in found if p.id is not None]
    context = page_context(request, session, principal, section="loyalty", rows=rows, base=_base(principal))
    return render(request, "loyalty/program_list.html", context)


# --- a program's settings -------------------------------------------------------------------------
def _settings_page(
    request: Request, session: Session, principal: Principal, form: ProgramForm,
    program: LoyaltyProgram | None, status: int = 200,
) -> Response:  # fmt: skip
    base = _base(principal)
    save_url = (
        f"{_program_url(principal, program.id)}/settings"
        if program and program.id
        else f"{base}/programs/new"
    )
    context = page_context(request, session, principal, section="loyalty", form=form, program=program,
                           base=base, save_url=save_url)  # fmt: skip
    return render(request, "loyalty/program_form.html", context, status_code=status)


@router.get("/programs/new", include_in_schema=False)
def new_program_page(request: Request, session: ControlDB, principal: Marketer) -> Response:
    """The settings form of a new program."""
    return _settings_page(request, session, principal, blank_form(), None)


@router.get(PROGRAM + "/settings", include_in_schema=False)
def program_settings_page(
    request: Request, program_id: int, session: ControlDB, principal: Marketer
) -> Response:
    """A program's settings form."""
    with tenant_session(principal.tenant.database) as tenant_db:
        program = program_or_404(tenant_db, program_id)
    return _settings_page(request, session, principal, form_of(program), program)


def _save_program(
    request: Request, session: Session, principal: Principal, posted: FormData, program_id: int | None
) -> Response:
    with tenant_session(principal.tenant.database) as tenant_db:
        program = program_or_404(tenant_db, program_id) if program_id else None
        form = read_form(posted, program.key if program else None)
        try:
            body = to_program_in(form, programs.list_programs(tenant_db, include_archived=True), program_id)
            if program_id is None:
                saved = programs.create_program(tenant_db, body, principal.actor)
            else:
                saved = programs.update_program(tenant_db, program_id, body, principal.actor)
        except FormInvalid as exc:
            form.problems = exc.problems
        except LoyaltyError as exc:
            form.problems = Problems(general=[str(exc)])
        else:
            tenant_db.commit()
            assert saved.id is not None
            action = "loyalty.program.create" if program_id is None else "loyalty.program.update"
            audit_change(request, session, principal, action, f"loyalty program {saved.id}", name=saved.name)
            return RedirectResponse(_program_url(principal, saved.id), status_code=303)
        tenant_db.rollback()
    return _settings_page(request, session, principal, form, program, status=422)


@router.post("/programs/new", include_in_schema=False)
async def create_program(request: Request, session: ControlDB, principal: Marketer) -> Response:
    """Start a program (audited) and show it; the form again with its problems otherwise."""
    posted = await request.form()
    return await run_in_threadpool(_save_program, request, session, principal, posted, None)


@router.post(PROGRAM + "/settings", include_in_schema=False)
async def update_program(
    request: Request, program_id: int, session: ControlDB, principal: Marketer
) -> Response:
    """Change a program's settings (not its key; audited)."""
    posted = await request.form()
    return await run_in_threadpool(_save_program, request, session, principal, posted, program_id)


# --- a program's page: dashboard, tiers, rules ------------------------------------------------------
def _program_page(
    request: Request, session: Session, principal: Principal, program_id: int, editing: str = "",
    edited: TierForm | None = None, error: str | None = None, status: int = 200,
) -> Response:  # fmt: skip
    scope = tenant_scope(session, principal.tenant)
    with tenant_session(principal.tenant.database) as tenant_db:
        program = program_or_404(tenant_db, program_id)
        options = load_options(tenant_db, scope, None)
        view = program_view(tenant_db, program, _zone(principal), options, editing, edited)
    context = page_context(request, session, principal, section="loyalty", base=_base(principal), error=error,
                           program_url=_program_url(principal, program_id), zone=principal.tenant.timezone,
                           can_write=principal.can(Permission.write_marketing), **view)  # fmt: skip
    return render(request, "loyalty/program_detail.html", context, status_code=status)


@router.get(PROGRAM, include_in_schema=False)
def program_page(
    request: Request, program_id: int, session: ControlDB, principal: Reader, tier: str = ""
) -> Response:
    """A program: its dashboard, tiers and earning rules (``tier``: the tier being edited)."""
    editing = tier if tier.isdigit() and principal.can(Permission.write_marketing) else ""
    return _program_page(request, session, principal, program_id, editing)


def _save_tier(
    request: Request, session: Session, principal: Principal, program_id: int, posted: FormData, target: str
) -> Response:
    form = read_tier_form(posted, target)
    with tenant_session(principal.tenant.database) as tenant_db:
        program_or_404(tenant_db, program_id)
        try:
            body = to_tier_in(form, programs.list_tiers(tenant_db, program_id))
            if target == NEW:
                tier = programs.add_tier(tenant_db, program_id, body)
            else:
                tier = programs.update_tier(tenant_db, program_id, int(target), body)
        except programs.TierNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except FormInvalid as exc:
            form.problems = exc.problems
        except LoyaltyError as exc:
            form.problems = Problems(general=[str(exc)])
        else:
            tenant_db.commit()
            action = "loyalty.tier.create" if target == NEW else "loyalty.tier.update"
            audit_change(request, session, principal, action, f"loyalty tier {tier.id}", name=tier.name)
            return RedirectResponse(_program_url(principal, program_id) + "#tiers", status_code=303)
        tenant_db.rollback()
    return _program_page(request, session, principal, program_id, edited=form, status=422)


@router.post(PROGRAM + "/tiers", include_in_schema=False)
async def add_tier(request: Request, program_id: int, session: ControlDB, principal: Marketer) -> Response:
    """Add a tier (audited)."""
    posted = await request.form()
    return await run_in_threadpool(_save_tier, request, session, principal, program_id, posted, NEW)


@router.post(PROGRAM + "/tiers/{tier_id:int}", include_in_schema=False)
async def change_tier(
    request: Request, program_id: int, tier_id: int, session: ControlDB, principal: Marketer
) -> Response:
    """Change a tier's name, threshold, multiplier or benefits (audited)."""
    posted = await request.form()
    return await run_in_threadpool(_save_tier, request, session, principal, program_id, posted, str(tier_id))


@router.post(PROGRAM + "/tiers/{tier_id:int}/delete", include_in_schema=False)
def delete_tier(
    request: Request, program_id: int, tier_id: int, session: ControlDB, principal: Marketer
) -> Response:
    """Remove a tier nobody holds (audited); the page with the reason otherwise."""
    with tenant_session(principal.tenant.database) as tenant_db:
        try:
            programs.delete_tier(tenant_db, program_id, tier_id)
        except programs.TierNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except LoyaltyError as exc:
            tenant_db.rollback()
            return _program_page(
                request, session, principal, program_id, error=f"Not removed: {exc}", status=409
            )
        tenant_db.commit()
    audit_change(request, session, principal, "loyalty.tier.delete", f"loyalty tier {tier_id}")
    return RedirectResponse(_program_url(principal, program_id) + "#tiers", status_code=303)


def _set_rule_status(
    request: Request,
    session: Session,
    principal: Principal,
    program_id: int,
    rule_id: int,
    status: RuleStatus,
) -> Response:
    with tenant_session(principal.tenant.database) as tenant_db:
        _rule_or_404(tenant_db, program_id, rule_id)
        try:
            rule = programs.set_rule_status(tenant_db, program_id, rule_id, status, principal.actor)
        except LoyaltyError as exc:
            tenant_db.rollback()
            return _program_page(request, session, principal, program_id, error=str(exc), status=409)
        tenant_db.commit()
    audit_change(
        request, session, principal, f"loyalty.rule.{status.value}", f"loyalty rule {rule_id}", name=rule.name
    )
    return RedirectResponse(_program_url(principal, program_id) + "#rules", status_code=303)


@router.post(RULES + "/{rule_id:int}/activate", include_in_schema=False)
def activate_rule(
    request: Request, program_id: int, rule_id: int, session: ControlDB, principal: Marketer
) -> Response:
    """Start applying a draft rule to events from now on (audited)."""
    return _set_rule_status(request, session, principal, program_id, rule_id, RuleStatus.active)


@router.post(RULES + "/{rule_id:int}/end", include_in_schema=False)
def end_rule(
    request: Request, program_id: int, rule_id: int, session: ControlDB, principal: Marketer
) -> Response:
    """Stop a rule for good; what it earned stays (audited)."""
    return _set_rule_status(request, session, principal, program_id, rule_id, RuleStatus.ended)


# --- the rule editor ------------------------------------------------------------------------------
def _editor_page(
    request: Request, session: Session, principal: Principal, program_id: int, rule_id: int | None,
    form: RuleForm | None = None, problems: Problems | None = None, status: int = 200,
) -> Response:  # fmt: skip
    scope = tenant_scope(session, principal.tenant)
    with tenant_session(principal.tenant.database) as tenant_db:
        program = program_or_404(tenant_db, program_id)
        rule = _rule_or_404(tenant_db, program_id, rule_id) if rule_id else None
        if rule is not None and rule.status == RuleStatus.ended:
            return RedirectResponse(_program_url(principal, program_id) + "#rules", status_code=303)
        form = form or (from_rule(rule, _zone(principal)) if rule else RuleForm())
        options = load_options(tenant_db, scope, None)
        rules_url = _rules_url(principal, program_id)
        view = editor_view(tenant_db, scope, options, program, rule, form, problems or Problems(), rules_url)
    # ``base`` is the profile condition's (the audience builder's templates read it).
    context = page_context(request, session, principal, section="loyalty",
                           program_url=_program_url(principal, program_id), zone=principal.tenant.timezone,
                           **view)  # fmt: skip
    return render(request, "loyalty/rule_form.html", context, status_code=status)


@router.get(RULES + "/new", include_in_schema=False)
def new_rule_page(request: Request, program_id: int, session: ControlDB, principal: Marketer) -> Response:
    """The editor of a new earning rule."""
    return _editor_page(request, session, principal, program_id, None)


@router.get(RULES + "/{rule_id:int}", include_in_schema=False)
def rule_page(
    request: Request, program_id: int, rule_id: int, session: ControlDB, principal: Marketer
) -> Response:
    """The editor of a draft or active rule (an ended one cannot change)."""
    return _editor_page(request, session, principal, program_id, rule_id)


def _save_rule(
    request: Request, session: Session, principal: Principal, program_id: int, posted: FormData,
    rule_id: int | None,
) -> Response:  # fmt: skip
    scope = tenant_scope(session, principal.tenant)
    form = read_rule_form(posted, scope.conditions)
    with tenant_session(principal.tenant.database) as tenant_db:
        program_or_404(tenant_db, program_id)
        if rule_id is not None:
            _rule_or_404(tenant_db, program_id, rule_id)
        names = {r.name: r.id for r in programs.list_rules(tenant_db, program_id)}
        try:
            body = to_rule_in(form, _zone(principal))
            if names.get(body.name, rule_id) != rule_id:
                raise FormInvalid(Problems(fields={"name": ["Another rule of this program has this name."]}))
            if rule_id is None:
                rule = programs.create_rule(tenant_db, program_id, body, principal.actor, scope.conditions)
            else:
                rule = programs.update_rule(
                    tenant_db, program_id, rule_id, body, principal.actor, scope.conditions
                )
        except FormInvalid as exc:
            problems = exc.problems
        except RuleError as exc:
            problems = rule_error_problems(exc)
        except LoyaltyError as exc:
            problems = Problems(general=[str(exc)])
        else:
            tenant_db.commit()
            action = "loyalty.rule.create" if rule_id is None else "loyalty.rule.update"
            audit_change(request, session, principal, action, f"loyalty rule {rule.id}", name=rule.name)
            return RedirectResponse(_program_url(principal, program_id) + "#rules", status_code=303)
        tenant_db.rollback()
    return _editor_page(request, session, principal, program_id, rule_id, form, problems, status=422)


@router.post(RULES + "/new", include_in_schema=False)
async def create_rule(request: Request, program_id: int, session: ControlDB, principal: Marketer) -> Response:
    """Save a new draft rule (audited); the editor again with its problems otherwise."""
    posted = await request.form()
    return await run_in_threadpool(_save_rule, request, session, principal, program_id, posted, None)


@router.post(RULES + "/{rule_id:int}", include_in_schema=False)
async def update_rule(
    request: Request, program_id: int, rule_id: int, session: ControlDB, principal: Marketer
) -> Response:
    """Save changes to a rule (an active one: for events from now on; audited)."""
    posted = await request.form()
    return await run_in_threadpool(_save_rule, request, session, principal, program_id, posted, rule_id)


def _fields(
    request: Request, session: Session, principal: Principal, program_id: int, posted: FormData
) -> Response:
    scope = tenant_scope(session, principal.tenant)
    form = apply_action(read_rule_form(posted, scope.conditions), Fields(posted).text("action"))
    with tenant_session(principal.tenant.database) as tenant_db:
        program = program_or_404(tenant_db, program_id)
        options = load_options(tenant_db, scope, None)
    rules_url = _rules_url(principal, program_id)
    context = {"principal": principal, **fields_view(program, form, Problems(), options, rules_url)}
    return render(request, "loyalty/_rule_fields.html", context)


@router.post(RULES + "/editor", include_in_schema=False)
async def rule_fields(request: Request, program_id: int, session: ControlDB, principal: Marketer) -> Response:
    """The rule's inputs again after a change of their shape (kind, filters, an operator)."""
    posted = await request.form()
    return await run_in_threadpool(_fields, request, session, principal, program_id, posted)


def _condition(
    request: Request, session: Session, principal: Principal, program_id: int, posted: FormData, template: str
) -> Response:
    scope = tenant_scope(session, principal.tenant)
    rule = rule_from_form(posted, scope.conditions)
    with tenant_session(principal.tenant.database) as tenant_db:
        program = program_or_404(tenant_db, program_id)
        options = load_options(tenant_db, scope, None)
        if action := Fields(posted).text("action"):
            rule = apply_rule_action(rule, action, options)
        form = RuleForm(profile_rule=rule)
        rules_url = _rules_url(principal, program_id)
        view = editor_view(tenant_db, scope, options, program, None, form, Problems(), rules_url)
    return render(request, template, {"principal": principal, **view})


@router.post(RULES + "/condition/builder", include_in_schema=False)
async def condition_builder(
    request: Request, program_id: int, session: ControlDB, principal: Marketer
) -> Response:
    """Apply one edit to the rule's profile condition; its rule tree and preview again."""
    posted = await request.form()
    return await run_in_threadpool(_condition, request, session, principal, program_id, posted,
                                   "segments/_builder_response.html")  # fmt: skip


@router.post(RULES + "/condition/preview", include_in_schema=False)
async def condition_preview(
    request: Request, program_id: int, session: ControlDB, principal: Marketer
) -> Response:
    """How many profiles the profile condition matches now."""
    posted = await request.form()
    return await run_in_threadpool(_condition, request, session, principal, program_id, posted,
                                   "segments/_preview_response.html")  # fmt: skip


@router.post(RULES + "/where/preview", include_in_schema=False)
def filter_typed(program_id: int, principal: Marketer) -> Response:
    """Nothing to refresh: the audience builder's value inputs ask for a preview the filters lack."""
    return Response(status_code=204)


# --- test a rule on a profile ------------------------------------------------------------------------
@router.get(RULES + "/profiles", include_in_schema=False)
def profiles_fragment(request: Request, program_id: int, principal: Reader, q: str = "") -> Response:
    """Profiles to test the rule on, found by id, email or name."""
    with tenant_session(principal.tenant.database) as tenant_db:
        program_or_404(tenant_db, program_id)
        found = pick(tenant_db, q, limit=SEARCH_LIMIT)
    rules_url = _rules_url(principal, program_id)
    context = {"principal": principal, "profiles": found, "q": q, "rules_url": rules_url}
    return render(request, "loyalty/_rule_profiles.html", context)


def _dry_run(
    request: Request, session: Session, principal: Principal, program_id: int, posted: FormData
) -> Response:
    scope = tenant_scope(session, principal.tenant)
    f = Fields(posted)
    form = read_rule_form(posted, scope.conditions)
    rule_id = int(f.text("rule_id")) if f.text("rule_id").isdigit() else None
    context: dict[str, Any] = {"principal": principal, "profile_id": f.text("profile_id")}
    with tenant_session(principal.tenant.database) as tenant_db:
        program = program_or_404(tenant_db, program_id)
        context["currency"] = program.currency
        try:
            properties = parse_properties(f.text("properties"))
            profile = get_profile(tenant_db, f.text("profile_id"))
            context.update(profile_id=profile.id, profile_name=profile.display_name or profile.id)
            body = to_rule_in(form, _zone(principal))
            context["result"] = dry_run(tenant_db, program, body, profile.id, scope.conditions, _zone(principal),
                                        properties, rule_id)  # fmt: skip
        except (PropertiesInvalid, ProfileNotFound) as exc:
            context["error"] = str(exc)
        except FormInvalid as exc:
            context["problems"] = exc.problems
        except RuleError as exc:
            context["problems"] = rule_error_problems(exc)
        finally:
            tenant_db.rollback()  # a dry run may have created the member row to read its tier
    failed = "error" in context or "problems" in context
    return render(request, "loyalty/_rule_dry_run.html", context, status_code=422 if failed else 200)


@router.post(RULES + "/dry-run", include_in_schema=False)
async def test_rule(request: Request, program_id: int, session: ControlDB, principal: Reader) -> Response:
    """What the rule as typed would earn a profile, check by check; records nothing."""
    posted = await request.form()
    return await run_in_threadpool(_dry_run, request, session, principal, program_id, posted)
