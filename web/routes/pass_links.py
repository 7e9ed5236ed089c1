"""Public pass links: the landing page, the pass download and its QR code (``/w/{tenant}/{token}``).

Opened by customers, so public on purpose: the token is signed per tenant, template and profile,
and anything that does not lead to a pass answers the same 404 page. The first visit issues the
pass; every visit is counted (clicks on the landing page, downloads of the file), and installs
are counted when the phone registers (the wallet's device web service).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import segno
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from core.db.engines import control_session, tenant_session
from core.passes.activity import record
from core.passes.issuing import Issued, issue
from core.passes.links import PassLink, landing_url, read_image_name, read_link
from core.passes.models import PassActivityKind, PassImage, PassState, PassTemplate
from core.passes.updates import notify
from core.passes.wallets import Wallet, WalletUnavailable, wallet_for
from core.profiles.service import ProfileNotFound, get_profile
from core.tenancy.errors import NotFound
from core.tenancy.models import Tenant
from core.tenancy.tenants import get_tenant
from web.templating import render

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
# Which wallet a visitor's phone has, by what its browser says it is.
APPLE_DEVICES = ("iPhone", "iPad", "iPod", "Macintosh")
WALLET_OF_CHANNEL = {"wallet_apple": "apple", "wallet_google": "google"}


@dataclass(frozen=True)
class _Found:
    tenant: Tenant
    link: PassLink
    template: PassTemplate
    wallets: dict[str, Wallet]  # the template's wallets usable now, its own first

    def wallet(self, channel: str | None, agent: str) -> Wallet:
        """The wallet asked for, else the one the visitor's phone has, else the template's own."""
        if channel is not None:
            if channel not in self.wallets:
                raise _Gone(404, "Pass not available", "This pass is not offered in that wallet.")
            return self.wallets[channel]
        preferred = "wallet_apple" if _on_apple(agent) else "wallet_google" if "Android" in agent else None
        return self.wallets.get(preferred or "", next(iter(self.wallets.values())))


def _on_apple(agent: str) -> bool:
    return any(name in agent for name in APPLE_DEVICES)


class _Gone(Exception):
    """The link leads nowhere (or nowhere that can give a pass now): the page to show instead."""

    def __init__(self, status_code: int, title: str, detail: str):
        super().__init__(detail)
        self.status_code, self.title, self.detail = status_code, title, detail


def _find(tenant_slug: str, token: str) -> _Found:
    with control_session() as control:
        try:
            tenant = get_tenant(control, tenant_slug)
        except NotFound:
            raise _Gone(
                404, "Link not found", "This link is not valid (it may have been copied incompletely)."
            ) from None
    link = read_link(tenant.slug, token)
    if link is None:
        raise _Gone(404, "Link not found", "This link is not valid (it may have been copied incompletely).")
    with tenant_session(tenant.database) as session:
        template = session.get(PassTemplate, link.template_id)
    if template is None or template.archived:
        raise _Gone(404, "Pass not available", "This pass is no longer offered.")
    wallets = {}
    for channel in template.wallets():
        try:
            wallets[channel] = wallet_for(tenant, channel)
        except WalletUnavailable as exc:
            log.warning("pass link of %s cannot be served in %s: %s", tenant.slug, channel, exc)
    if not wallets:
        raise _Gone(503, "Pass not available right now", "Please try again later.")
    return _Found(tenant, link, template, wallets)


def _issued(session: Session, found: _Found, wallet: Wallet) -> Issued:
    """The visitor's pass, issued now if it was not yet (a revoked pass is refused)."""
    try:
        profile = get_profile(session, found.link.profile_id)
    except ProfileNotFound:
        raise _Gone(404, "Pass not available", "This pass is no longer offered.") from None
    outcome = issue(session, wallet, found.template, [profile.id])[profile.id]
    if not isinstance(outcome, Issued):
        log.warning("pass of %s cannot be built: %s", profile.id, outcome)
        raise _Gone(
            503, "Pass not available right now", "Your pass cannot be prepared right now; please try later."
        )
    if outcome.wallet_pass.state != PassState.active:
        raise _Gone(410, "Pass no longer valid", "This pass was withdrawn.")
    return outcome


def _error(request: Request, gone: _Gone) -> Response:
    context = {"status_code": gone.status_code, "title": gone.title, "detail": gone.detail}
    return render(request, "error.html", context, status_code=gone.status_code)


def _visit(
    tenant_slug: str, token: str, kind: PassActivityKind, channel: str | None, agent: str
) -> tuple[_Found, Wallet, Issued]:
    found = _find(tenant_slug, token)
    wallet = found.wallet(channel, agent)
    with tenant_session(found.tenant.database) as session:
        outcome = _issued(session, found, wallet)
        record(session, outcome.wallet_pass, kind)
        session.commit()
    if outcome.changed or outcome.new:
        notify(found.tenant, [outcome])
    return found, wallet, outcome


@router.get("/w/{tenant}/image/{name}.png")
async def pass_image(request: Request, tenant: str, name: str) -> Response:
    """A pass template's image (@2x), for wallets that fetch images from us (Google)."""
    found = await run_in_threadpool(_image, tenant, name)
    if found is None:
        return _error(request, _Gone(404, "Not found", "There is no such image."))
    return Response(found, media_type="image/png", headers={"Cache-Control": "public, max-age=86400"})


def _image(tenant_slug: str, name: str) -> bytes | None:
    image_id = read_image_name(tenant_slug, name)
    if image_id is None:
        return None
    with control_session() as control:
        try:
            tenant = get_tenant(control, tenant_slug)
        except NotFound:
            return None
    with tenant_session(tenant.database) as session:
        image = session.get(PassImage, image_id)
        return image.png_2x if image is not None else None


@router.get("/w/{tenant}/{token}")
async def landing(request: Request, tenant: str, token: str) -> Response:
    """The page offering a customer their pass, with a button per wallet, the one their phone has first."""
    agent = request.headers.get("user-agent", "")
    try:
        found, wallet, outcome = await run_in_threadpool(
            _visit, tenant, token, PassActivityKind.clicked, None, agent
        )
    except _Gone as gone:
        return _error(request, gone)
    on_phone = _on_apple(agent) or "Android" in agent
    page = landing_url(found.tenant.slug, found.link.template_id, found.link.profile_id)
    buttons = [
        {"wallet": WALLET_OF_CHANNEL.get(channel, channel), "label": f"Add to {other.channel.label}",
         "href": f"{page}/pass?wallet={channel}", "primary": other is wallet}
        for channel, other in found.wallets.items()
    ]  # fmt: skip
    buttons.sort(key=lambda button: not button["primary"])
    wanted = "wallet_apple" if _on_apple(agent) else "wallet_google" if "Android" in agent else None
    context = {
        "title": outcome.rendered.organization_name,
        "intro": outcome.rendered.description,
        "description": outcome.rendered.description,
        "language": outcome.rendered.language,
        "buttons": buttons,
        "show_qr": not on_phone,  # on a computer: scan to open this page on the phone
        "qr_src": f"{page}/qr.svg",
        "qr_caption": "Scan with your phone to add the pass there.",
        "preview_png": None,
        "problem": None if wanted is None or wanted in found.wallets else
                   f"This pass is for {wallet.channel.label}; it may not open on this phone.",
    }  # fmt: skip
    return render(request, "passes/landing.html", context)


@router.get("/w/{tenant}/{token}/pass")
async def download(request: Request, tenant: str, token: str, wallet: str | None = None) -> Response:
    """The signed pass file itself, or for a hosted wallet its save page (counted as a download).

    ``wallet`` names the wallet channel; without it, the one the visitor's phone has.
    """
    agent = request.headers.get("user-agent", "")
    try:
        found, chosen, outcome = await run_in_threadpool(
            _visit, tenant, token, PassActivityKind.downloaded, wallet, agent
        )
        channel, ctx = chosen.channel, chosen.ctx
        if channel.hosted:
            save = await run_in_threadpool(channel.save_url, ctx, outcome.rendered)
            if save is None:
                raise _Gone(503, "Pass not available right now", "Please try again later.")
            return RedirectResponse(save, status_code=303, headers={"Cache-Control": "no-store"})
        built = await run_in_threadpool(channel.build_pass, ctx, outcome.rendered)
    except _Gone as gone:
        return _error(request, gone)
    headers = {"Content-Disposition": f'attachment; filename="{built.filename}"', "Cache-Control": "no-store"}
    return Response(built.content, media_type=built.media_type, headers=headers)


@router.get("/w/{tenant}/{token}/qr.{kind}")
async def qr_code(request: Request, tenant: str, token: str, kind: str) -> Response:
    """A QR code of the landing page (SVG or PNG), for print and in-store signage."""
    if kind not in ("svg", "png"):
        return _error(request, _Gone(404, "Not found", "QR codes come as .svg or .png."))
    try:
        found = await run_in_threadpool(_find, tenant, token)
    except _Gone as gone:
        return _error(request, gone)
    code = segno.make(
        landing_url(found.tenant.slug, found.link.template_id, found.link.profile_id), error="m"
    )
    out = io.BytesIO()
    if kind == "svg":
        code.save(out, kind="svg", scale=6, border=2)
        return Response(out.getvalue(), media_type="image/svg+xml")
    code.save(out, kind="png", scale=10, border=2)
    return Response(out.getvalue(), media_type="image/png")
