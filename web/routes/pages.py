"""The tenant's main pages: dashboard and the sections of the navigation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from core.plugins import get_host
from core.queue.outbox import job_counts
from core.tenancy.plugin_settings import enabled_plugins, settings_of
from core.tenancy.roles import Permission
from web.auth import ControlDB, LoginRequired, Principal, require, session_user, user_tenants
from web.csrf import verify_csrf
from web.templating import render

router = APIRouter(dependencies=[Depends(verify_csrf)])
Reader = Annotated[Principal, Depends(require(Permission.read_data))]

SECTIONS: dict[str, tuple[str, str]] = {}


def page_context(request: Request, session: Session, principal: Principal, **extra: Any) -> dict[str, Any]:
    """What every tenant page's layout needs."""
    return {
        "principal": principal,
        "tenants": user_tenants(session, principal.user),
        "perm": Permission,
        **extra,
    }


def panels(
    principal: Principal, location: str, session: Session, context: dict[str, Any]
) -> list[dict[str, str]]:
    """Plugin UI panels for this place, from the plugins the tenant enabled (a failing one is skipped)."""
    host = get_host()
    enabled = enabled_plugins(session, principal.tenant, host)
    rendered = []
    for registered in host.ui_panels.values():
        panel = registered.item
        if registered.plugin in enabled and panel.location == location:
            try:
                html = panel.render(principal.tenant.slug, context)
            except Exception as exc:  # noqa: BLE001 - one plugin's bug must not break the page
                html = f"<p class='flash error'>This panel failed: {type(exc).__name__}</p>"
            rendered.append({"label": panel.label, "html": html})
    return rendered


@router.get("/", include_in_schema=False)
def home(request: Request, session: ControlDB) -> Response:
    """Send a signed-in user to their first tenant."""
    user = session_user(request, session)
    if user is None:
        raise LoginRequired()
    tenants = user_tenants(session, user)
    if not tenants:
        return render(request, "no_tenant.html", {"user": user})
    return RedirectResponse(f"/t/{tenants[0]['slug']}/", status_code=303)


@router.get("/t/{tenant}/", include_in_schema=False)
def dashboard(request: Request, session: ControlDB, principal: Reader) -> Response:
    """The tenant's overview: channels, background work, plugin panels."""
    host = get_host()
    rows = settings_of(session, principal.tenant)
    enabled = enabled_plugins(session, principal.tenant, host)
    channels = [
        {"key": key, "label": ch.label, "sandbox": rows[host.owner_of_channel(key) or ""].sandbox}
        for key, ch in sorted(host.channels_for(enabled).items())
    ]
    jobs = job_counts(principal.tenant.database)
    context = page_context(
        request, session, principal, channels=channels, jobs=jobs,
        panels=panels(principal, "dashboard", session, {}),
    )  # fmt: skip
    return render(request, "dashboard.html", context)


@router.get("/t/{tenant}/{section}", include_in_schema=False)
def section(request: Request, section: str, session: ControlDB, principal: Reader) -> Response:
    """A section of the navigation."""
    if section not in SECTIONS:
        raise HTTPException(404, f"No page {section!r}.")
    heading, blurb = SECTIONS[section]
    context = page_context(request, session, principal, section=section, heading=heading, blurb=blurb)
    return render(request, "section.html", context)
