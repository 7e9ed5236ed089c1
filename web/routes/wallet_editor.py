"""The pass template editor: the form beside a live preview of the pass.

The form is read by :mod:`web.pass_pages.design_form` and turned into a design by
:func:`web.pass_pages.to_design.design_of`, for the preview and for saving alike. As the marketer
types, the whole form is posted to ``/preview`` (``input changed delay:400ms``), which renders the
unsaved design for a profile in a language, or lists what stops it. Adding or removing a field, an
iBeacon or a language posts the form to ``/editor`` with an ``action`` and the form's inputs come
back drawn again; without JavaScript the same buttons submit to the save URL, which then only
redraws the page. Fields are dragged between areas by ``/static/wallet_editor.js``; each card's
"Area" select does the same from the keyboard.

Everything here needs ``write_marketing``; saving is audited (``passes.template.update``) and marks
the template's live passes for re-issue, so phones get the new design.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session
from starlette.datastructures import FormData

from core.db.engines import tenant_session
from core.passes import library
from core.passes.design import PassDesign
from core.passes.library import LibraryError
from core.passes.marking import mark_changed
from core.passes.ui_queries import live_holders
from core.tenancy.roles import Permission
from web.auditing import audit_change
from web.auth import ControlDB, Principal, require
from web.campaign_pages.form import FormInvalid, Problems
from web.csrf import verify_csrf
from web.pass_pages.access import channel_label, template_or_404, wallet_base, wallet_page
from web.pass_pages.design_form import DesignForm, form_of_design, read_design_form
from web.pass_pages.editor_view import editor_view
from web.pass_pages.form_actions import apply_action
from web.pass_pages.preview_view import preview_of
from web.pass_pages.problems import library_problems
from web.pass_pages.to_design import design_of
from web.pass_pages.wallet_settings import checked_settings
from web.templating import render

router = APIRouter(
    prefix="/t/{tenant}/wallet/templates/{template_id:int}", dependencies=[Depends(verify_csrf)]
)
Marketer = Annotated[Principal, Depends(require(Permission.write_marketing))]


def _url(principal: Principal, template_id: int) -> str:
    return f"{wallet_base(principal)}/templates/{template_id}"


def _text(posted: FormData, name: str) -> str:
    value = posted.get(name)
    return value if isinstance(value, str) else ""


def _editor_page(
    request: Request, control: Session, principal: Principal, template_id: int, form: DesignForm | None = None,
    problems: Problems | None = None, status: int = 200,
) -> Response:  # fmt: skip
    with tenant_session(principal.tenant.database) as tenant_db:
        template = template_or_404(tenant_db, template_id)
        if form is None:
            design = PassDesign.model_validate(template.design)
            form = form_of_design(template.name, template.key, design)
            form.other_wallets = list(template.other_channels)
        view = editor_view(tenant_db, template, form, problems or Problems(), channel_label(template.channel))
        preview = preview_of(tenant_db, principal.tenant, template.channel, form)
    return wallet_page(request, control, principal, "wallet/editor.html", status, preview=preview,
                       template_url=_url(principal, template_id), **view)  # fmt: skip


@router.get("", include_in_schema=False)
def editor_page(request: Request, template_id: int, control: ControlDB, principal: Marketer) -> Response:
    """The editor of a template, its preview for the most recently seen profile."""
    return _editor_page(request, control, principal, template_id)


def _save(
    request: Request, control: Session, principal: Principal, template_id: int, posted: FormData
) -> Response:
    form = read_design_form(posted)
    if action := _text(posted, "action"):  # a shape change submitted without JavaScript
        problems = Problems()
        if refused := apply_action(form, action, _text(posted, "new_language")):
            problems.add("new_language", refused)
        return _editor_page(request, control, principal, template_id, form, problems)
    with tenant_session(principal.tenant.database) as tenant_db:
        template = template_or_404(tenant_db, template_id)
        stored = PassDesign.model_validate(template.design).wallet_settings
        problems = Problems()  # the wallets' own settings are checked with the rest of the design
        settings = checked_settings(template, form, stored, problems)
        try:
            design = design_of(form).model_copy(update={"wallet_settings": settings})
            if problems:
                raise FormInvalid(Problems())
            saved = library.save_template(tenant_db, key=form.key, name=form.name, channel=template.channel,
                                          design=design.model_dump(mode="json"), by=principal.actor,
                                          template=template, other_channels=form.other_wallets)  # fmt: skip
        except FormInvalid as exc:
            problems.merge(exc.problems)
        except LibraryError as exc:
            problems = library_problems(exc, form)
        else:
            refreshed = mark_changed(tenant_db, principal.tenant.slug, live_holders(tenant_db, template_id))
            tenant_db.commit()
            audit_change(request, control, principal, "passes.template.update", f"pass template {saved.id}",
                         key=saved.key, name=saved.name, passes_refreshed=refreshed)  # fmt: skip
            return RedirectResponse(f"{_url(principal, template_id)}?saved=1", status_code=303)
        tenant_db.rollback()
    return _editor_page(request, control, principal, template_id, form, problems, 422)


@router.post("", include_in_schema=False)
async def save_template(
    request: Request, template_id: int, control: ControlDB, principal: Marketer
) -> Response:
    """Save the design (audited; live passes are re-issued); the editor with each problem by its input otherwise."""
    posted = await request.form()
    return await run_in_threadpool(_save, request, control, principal, template_id, posted)


def _reshaped(request: Request, principal: Principal, template_id: int, posted: FormData) -> Response:
    form = read_design_form(posted)
    problems = Problems()
    if refused := apply_action(form, _text(posted, "action"), _text(posted, "new_language")):
        problems.add("new_language", refused)
    with tenant_session(principal.tenant.database) as tenant_db:
        template = template_or_404(tenant_db, template_id)
        view = editor_view(tenant_db, template, form, problems, channel_label(template.channel))
    context = {"principal": principal, "base": wallet_base(principal), "template_url": _url(principal, template_id),
               **view}  # fmt: skip
    return render(request, "wallet/_editor_fields.html", context, status_code=422 if problems else 200)


@router.post("/editor", include_in_schema=False)
async def reshape(request: Request, template_id: int, control: ControlDB, principal: Marketer) -> Response:
    """The form's inputs again after adding or removing a field, an iBeacon or a language."""
    posted = await request.form()
    return await run_in_threadpool(_reshaped, request, principal, template_id, posted)


def _preview(request: Request, principal: Principal, template_id: int, posted: FormData) -> Response:
    form = read_design_form(posted)
    with tenant_session(principal.tenant.database) as tenant_db:
        template = template_or_404(tenant_db, template_id)
        preview = preview_of(tenant_db, principal.tenant, template.channel, form)
    context = {"principal": principal, "preview": preview, "template": template, "base": wallet_base(principal),
               "template_url": _url(principal, template_id)}  # fmt: skip
    return render(request, "wallet/_preview.html", context, status_code=422 if preview.failed else 200)


@router.post("/preview", include_in_schema=False)
async def preview(request: Request, template_id: int, control: ControlDB, principal: Marketer) -> Response:
    """The pass as typed (not saved) for the chosen profile in the chosen language, or its problems."""
    posted = await request.form()
    return await run_in_threadpool(_preview, request, principal, template_id, posted)
