"""What every Wallet route does: find the template (404 otherwise), name its wallet, draw a page
of the section."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import Response
from sqlmodel import Session

from core.passes import library
from core.passes.models import PassTemplate
from core.passes.wallets import wallet_channels
from web.auth import Principal
from web.routes.pages import page_context
from web.templating import render


def wallet_base(principal: Principal) -> str:
    """The Wallet section's URL for the principal's tenant."""
    return f"/t/{principal.tenant.slug}/wallet"


def template_or_404(session: Session, template_id: int) -> PassTemplate:
    """The template, or an HTTP 404 saying there is none."""
    try:
        return library.template_by_id(session, template_id)
    except library.LibraryError as exc:
        raise HTTPException(404, str(exc)) from exc


def wallet_labels() -> dict[str, str]:
    """The installed wallets' names, by channel key."""
    return {key: channel.label for key, channel in sorted(wallet_channels().items())}


def channel_label(channel: str) -> str:
    """A wallet's name (its key when it is not installed any more)."""
    return wallet_labels().get(channel, f"{channel} (not installed)")


def wallet_page(
    request: Request, control: Session, principal: Principal, page: str, status: int = 200, **extra: Any
) -> Response:
    """A page of the Wallet section (``page``: its template file)."""
    context = page_context(
        request, control, principal, section="wallet", base=wallet_base(principal), **extra
    )
    return render(request, page, context, status_code=status)
