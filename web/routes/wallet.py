"""The Wallet section: the pass template library, a new template, the tenant's stores and images.

A template is designed in the editor (:mod:`web.routes.wallet_editor`); its issued passes, its
validation report and its PNG preview are :mod:`web.routes.wallet_passes`. Seeing needs
``read_data``; creating templates, adding stores and uploading images ``write_marketing``, each
audited (``passes.template.create``, ``passes.store.create``, ``passes.image.upload``).

An image is uploaded once and chosen per template. The editor uploads in place: its whole form is
posted here with ``upload=<kind>`` and the file as ``upload_file.<kind>``, and the images card
comes back with the new image chosen (or the reason it was refused); the images page posts
``kind`` and ``file``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session
from starlette.datastructures import FormData, UploadFile

from core.db.engines import tenant_session
from core.passes import library
from core.passes.contract import IMAGE_KINDS
from core.passes.library import MAX_UPLOAD, LibraryError
from core.passes.models import PassImage
from core.passes.ui_queries import issued_counts
from core.tenancy.roles import Permission
from web.auditing import audit_change
from web.auth import ControlDB, Principal, require
from web.campaign_pages.form import Problems
from web.csrf import verify_csrf
from web.pass_pages.access import wallet_base, wallet_labels, wallet_page
from web.pass_pages.design_form import read_design_form
from web.pass_pages.editor_view import image_choices, image_sizes
from web.pass_pages.new_template import NewTemplateForm, read_new_template, starter_design
from web.pass_pages.store_form import StoreForm, read_store_form, save_store
from web.templating import render

router = APIRouter(prefix="/t/{tenant}/wallet", dependencies=[Depends(verify_csrf)])
Reader = Annotated[Principal, Depends(require(Permission.read_data))]
Marketer = Annotated[Principal, Depends(require(Permission.write_marketing))]


def _texts(posted: FormData) -> dict[str, str]:
    return {key: value for key, value in posted.items() if isinstance(value, str)}


# --- the library -----------------------------------------------------------------------------------
@router.get("", include_in_schema=False)
def library_page(request: Request, control: ControlDB, principal: Reader) -> Response:
    """Every pass template: its wallet, style and how many passes it issued."""
    with tenant_session(principal.tenant.database) as tenant_db:
        templates = library.templates(tenant_db)
        counts = issued_counts(tenant_db)
    rows = [(t, t.design.get("style", "storeCard"), counts.get(t.id or 0, 0)) for t in templates]
    return wallet_page(request, control, principal, "wallet/library.html", rows=rows, labels=wallet_labels())


def _new_page(
    request: Request, control: Session, principal: Principal, form: NewTemplateForm, status: int = 200
) -> Response:
    return wallet_page(request, control, principal, "wallet/new_template.html", status, form=form,
                       labels=wallet_labels())  # fmt: skip


@router.get("/templates/new", include_in_schema=False)
def new_template_page(request: Request, control: ControlDB, principal: Marketer) -> Response:
    """The form of a new template: its wallet, name and key."""
    labels = wallet_labels()
    return _new_page(request, control, principal, NewTemplateForm(channel=next(iter(labels), "")))


def _create(request: Request, control: Session, principal: Principal, posted: dict[str, str]) -> Response:
    form = read_new_template(posted)
    with tenant_session(principal.tenant.database) as tenant_db:
        icons = library.images(tenant_db, "icon")
        design = starter_design(principal.tenant.name, form.name, icons[0].id if icons else None)
        try:
            template = library.save_template(tenant_db, key=form.key, name=form.name, channel=form.channel,
                                             design=design.model_dump(mode="json"), by=principal.actor)  # fmt: skip
        except LibraryError as exc:
            tenant_db.rollback()
            for where, what in exc.problems:
                form.problems.add(where if where in ("channel", "name", "key") else None, what)
            return _new_page(request, control, principal, form, 422)
        tenant_db.commit()
    audit_change(request, control, principal, "passes.template.create", f"pass template {template.id}",
                 key=template.key, name=template.name, channel=template.channel)  # fmt: skip
    return RedirectResponse(f"{wallet_base(principal)}/templates/{template.id}", status_code=303)


@router.post("/templates/new", include_in_schema=False)
async def create_template(request: Request, control: ControlDB, principal: Marketer) -> Response:
    """Create a template with a starter design (audited) and open the editor; the form again otherwise."""
    posted = _texts(await request.form())
    return await run_in_threadpool(_create, request, control, principal, posted)


# --- stores ----------------------------------------------------------------------------------------
def _stores_page(
    request: Request, control: Session, principal: Principal, form: StoreForm, status: int = 200
) -> Response:
    with tenant_session(principal.tenant.database) as tenant_db:
        stores = library.stores(tenant_db)
    return wallet_page(request, control, principal, "wallet/stores.html", status, stores=stores, form=form)


@router.get("/stores", include_in_schema=False)
def stores_page(request: Request, control: ControlDB, principal: Reader) -> Response:
    """The tenant's stores, where passes can show on the lock screen."""
    return _stores_page(request, control, principal, StoreForm())


def _add_store(request: Request, control: Session, principal: Principal, posted: dict[str, str]) -> Response:
    form = read_store_form(posted)
    with tenant_session(principal.tenant.database) as tenant_db:
        store = save_store(tenant_db, form)
        if store is None:
            tenant_db.rollback()
            return _stores_page(request, control, principal, form, 422)
        tenant_db.commit()
    audit_change(request, control, principal, "passes.store.create", f"store {store.id}", name=store.name,
                 latitude=store.latitude, longitude=store.longitude)  # fmt: skip
    return RedirectResponse(f"{wallet_base(principal)}/stores", status_code=303)


@router.post("/stores", include_in_schema=False)
async def add_store(request: Request, control: ControlDB, principal: Marketer) -> Response:
    """Add a store (audited); the page again with the form's problems otherwise."""
    posted = _texts(await request.form())
    return await run_in_threadpool(_add_store, request, control, principal, posted)


# --- images ----------------------------------------------------------------------------------------
def _images_page(
    request: Request, control: Session, principal: Principal, problems: Problems | None = None,
    kind: str = "logo", status: int = 200,
) -> Response:  # fmt: skip
    with tenant_session(principal.tenant.database) as tenant_db:
        found = image_choices(tenant_db)
    return wallet_page(request, control, principal, "wallet/images.html", status, images=found, kind=kind,
                       image_kinds=IMAGE_KINDS, image_sizes=image_sizes(), problems=problems or Problems(),
                       max_mb=MAX_UPLOAD // 1024 // 1024)  # fmt: skip


@router.get("/images", include_in_schema=False)
def images_page(request: Request, control: ControlDB, principal: Reader) -> Response:
    """The uploaded images, by kind, and the upload form."""
    return _images_page(request, control, principal)


async def _upload(posted: FormData, kind: str) -> tuple[str, bytes] | None:
    """The uploaded file's name and bytes (at most one byte over the limit is read), if one was sent."""
    sent = posted.get(f"upload_file.{kind}") or posted.get("file")
    if not isinstance(sent, UploadFile) or not sent.filename:
        return None
    return sent.filename, await sent.read(MAX_UPLOAD + 1)


def _store_image(
    request: Request, control: Session, principal: Principal, kind: str, sent: tuple[str, bytes] | None
) -> PassImage | str:
    if sent is None:
        return "Choose a file to upload."
    with tenant_session(principal.tenant.database) as tenant_db:
        try:
            image = library.add_image(tenant_db, kind, sent[0], sent[1])
        except LibraryError as exc:
            tenant_db.rollback()
            return str(exc)
        tenant_db.commit()
    audit_change(request, control, principal, "passes.image.upload", f"pass image {image.id}", kind=kind,
                 filename=image.filename, width=image.width, height=image.height)  # fmt: skip
    return image


def _images_card(
    request: Request, principal: Principal, posted: FormData, kind: str, outcome: PassImage | str
) -> Response:
    form = read_design_form(posted)
    problems = Problems()
    if isinstance(outcome, str):
        problems.add(f"images.{kind}", outcome)
    else:
        form.images[kind] = str(outcome.id)
    with tenant_session(principal.tenant.database) as tenant_db:
        found = image_choices(tenant_db)
    context = {"principal": principal, "form": form, "problems": problems, "images": found, "image_kinds": IMAGE_KINDS,
               "image_sizes": image_sizes(), "base": wallet_base(principal), "uploaded": kind}  # fmt: skip
    return render(request, "wallet/_images.html", context, status_code=422 if problems else 200)


@router.post("/images", include_in_schema=False)
async def upload_image(request: Request, control: ControlDB, principal: Marketer) -> Response:
    """Upload an image for one kind, fitted to its size (audited); a clear reason when it is refused."""
    posted = await request.form()
    in_editor = isinstance(posted.get("upload"), str)
    kind = str(posted.get("upload") or posted.get("kind") or "")
    if kind not in IMAGE_KINDS:
        raise HTTPException(422, f"{kind!r} is not an image kind: use one of {', '.join(IMAGE_KINDS)}.")
    outcome = await run_in_threadpool(
        _store_image, request, control, principal, kind, await _upload(posted, kind)
    )
    if in_editor:
        return _images_card(request, principal, posted, kind, outcome)
    if isinstance(outcome, str):
        problems = Problems()
        problems.add("file", outcome)
        return _images_page(request, control, principal, problems, kind, 422)
    return RedirectResponse(f"{wallet_base(principal)}/images#image-{outcome.id}", status_code=303)


@router.get("/images/{image_id:int}.png", include_in_schema=False)
def image_png(image_id: int, principal: Reader) -> Response:
    """An uploaded image at @2x, as the pass will show it."""
    with tenant_session(principal.tenant.database) as tenant_db:
        image = tenant_db.get(PassImage, image_id)
    if image is None:
        raise HTTPException(404, f"There is no image {image_id}.")
    return Response(image.png_2x, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
