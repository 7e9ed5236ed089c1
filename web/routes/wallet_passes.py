"""A saved template's passes: those issued, a validation report, and its preview as a PNG.

The validation report checks the template for the members of a segment (or the most recent
profiles) and lists who would not get a pass, and why; nothing is issued. The PNG is the wallet's
own snapshot of the pass front, for one profile in one language. All of it needs ``read_data``.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from sqlmodel import Session

from core.db.engines import tenant_session
from core.passes import previews
from core.passes.design import PassDesign
from core.passes.models import PassTemplate
from core.passes.ui_queries import issued_passes
from core.passes.wallets import WalletUnavailable, wallet_for
from core.plugin_api import ChannelNotImplemented
from core.tenancy.roles import Permission
from web.auth import ControlDB, Principal, require
from web.csrf import verify_csrf
from web.pass_pages.access import channel_label, template_or_404, wallet_base, wallet_page
from web.pass_pages.preview_view import preview_profile
from web.pass_pages.report_view import segment_choices, validation_report

log = logging.getLogger(__name__)
router = APIRouter(
    prefix="/t/{tenant}/wallet/templates/{template_id:int}", dependencies=[Depends(verify_csrf)]
)
Reader = Annotated[Principal, Depends(require(Permission.read_data))]
SHOWN = 200


def _page(
    request: Request,
    control: Session,
    principal: Principal,
    template: PassTemplate,
    page: str,
    **extra: Any,
) -> Response:
    url = f"{wallet_base(principal)}/templates/{template.id}"
    return wallet_page(request, control, principal, page, template=template, template_url=url,
                       channel_label=channel_label(template.channel), **extra)  # fmt: skip


@router.get("/passes", include_in_schema=False)
def passes_page(request: Request, template_id: int, control: ControlDB, principal: Reader) -> Response:
    """The passes a template issued: serial, profile, state, when issued and updated, devices."""
    with tenant_session(principal.tenant.database) as tenant_db:
        template = template_or_404(tenant_db, template_id)
        rows = issued_passes(tenant_db, template_id, SHOWN)
    return _page(request, control, principal, template, "wallet/passes.html", rows=rows, shown=SHOWN)


@router.get("/report", include_in_schema=False)
def report_page(
    request: Request, template_id: int, control: ControlDB, principal: Reader, source: str = ""
) -> Response:
    """Which profiles of a segment (or the recent ones) could not get this pass, and why (``source``)."""
    with tenant_session(principal.tenant.database) as tenant_db:
        template = template_or_404(tenant_db, template_id)
        choices = segment_choices(tenant_db)
        report = validation_report(tenant_db, principal.tenant, template, source) if source else None
    return _page(request, control, principal, template, "wallet/report.html", choices=choices, report=report)


def _png(principal: Principal, template_id: int, profile: str, language: str) -> bytes | str:
    """The PNG, or why there is none."""
    with tenant_session(principal.tenant.database) as tenant_db:
        template = template_or_404(tenant_db, template_id)
        found = preview_profile(tenant_db, profile)
        if found is None:
            return "There is no profile to preview with yet."
        try:
            wallet = wallet_for(principal.tenant, template.channel)
            result = previews.preview(tenant_db, wallet, PassDesign.model_validate(template.design), found.id,
                                      language)  # fmt: skip
        except (WalletUnavailable, ChannelNotImplemented) as exc:
            return str(exc)
        except Exception as exc:  # noqa: BLE001 - a failing plugin must not break the page
            log.exception("the %s preview failed", template.channel)
            return f"The wallet's preview failed ({type(exc).__name__})."
    if result.problems:
        return "This profile cannot get the pass: " + "; ".join(
            f"{p.field}: {p.message}" for p in result.problems
        )
    if result.preview is None or result.preview.png is None:
        return f"{channel_label(template.channel)} gives no PNG snapshot of its passes."
    return result.preview.png


@router.get("/preview.png", include_in_schema=False)
def preview_png(template_id: int, principal: Reader, profile: str = "", language: str = "") -> Response:
    """The saved template's pass front as a PNG, for a profile (default: the most recent) in a language."""
    outcome = _png(principal, template_id, profile, language)
    if isinstance(outcome, str):
        raise HTTPException(422, outcome)
    return Response(outcome, media_type="image/png", headers={"Cache-Control": "no-store"})
