"""Settings pages: write keys and tokens, members, plugins and their config, sandbox, audit log."""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, select
from starlette.datastructures import UploadFile

from core.audit import service as audit
from core.plugins import get_host
from core.sandbox.service import recent_requests
from core.tenancy import keys
from core.tenancy import plugin_settings as plugins
from core.tenancy.errors import TenancyError
from core.tenancy.members import format_scope, parse_scope, put_member
from core.tenancy.models import User
from core.tenancy.roles import Permission, Role
from core.tenancy.users import members
from web.auth import ControlDB, Principal, client_info, require
from web.csrf import verify_csrf
from web.forms import MAX_UPLOAD, form_fields, parse_form, upload_fields, uploaded_value
from web.routes.pages import page_context, panels
from web.templating import render

router = APIRouter(prefix="/t/{tenant}/settings", dependencies=[Depends(verify_csrf)])
Member = Annotated[Principal, Depends(require(Permission.read_data))]
SettingsReader = Annotated[Principal, Depends(require(Permission.read_settings))]
UserManager = Annotated[Principal, Depends(require(Permission.manage_users))]
PluginManager = Annotated[Principal, Depends(require(Permission.manage_plugins))]
AuditReader = Annotated[Principal, Depends(require(Permission.read_audit))]


def _context(request: Request, session: Session, principal: Principal, page: str, **extra: object) -> dict:
    return page_context(request, session, principal, section="settings", page=page, **extra)


@router.get("", include_in_schema=False)
def general(
    request: Request, session: ControlDB, principal: Member, new_token: str | None = None
) -> Response:
    """Write keys (for those who may read settings) and API tokens."""
    tokens = keys.list_api_tokens(session, principal.tenant)
    if not principal.can(Permission.manage_users):
        tokens = [t for t in tokens if t.user_id == principal.user.id]
    owners = {
        u.id: u.email for u in session.exec(select(User).where(col(User.id).in_({t.user_id for t in tokens})))
    }
    context = _context(
        request, session, principal, "general",
        write_keys=keys.write_keys(session, principal.tenant) if principal.can(Permission.read_settings) else [],
        tokens=[(t, owners.get(t.user_id, "?")) for t in tokens],
        new_token=request.session.pop("new_token", None),
        panels=panels(principal, "settings", session, {}),
    )  # fmt: skip
    return render(request, "settings/general.html", context)


@router.post("/tokens", include_in_schema=False)
def create_token(
    request: Request, session: ControlDB, principal: Member, name: Annotated[str, Form()]
) -> Response:
    """Create an API token for the signed-in user; it is shown once."""
    name = name.strip()[:100] or "token"
    token, plain = keys.issue_api_token(session, principal.tenant, principal.user, name)
    audit.record(session, actor=principal.actor, action="token.create", tenant_id=principal.tenant.id,
                 target=f"{name} ({token.prefix}…)", **client_info(request))  # fmt: skip
    session.commit()
    request.session["new_token"] = plain
    return RedirectResponse(f"/t/{principal.tenant.slug}/settings#tokens", status_code=303)


@router.post("/tokens/{token_id}/revoke", include_in_schema=False)
def revoke_token(request: Request, token_id: int, session: ControlDB, principal: Member) -> Response:
    """Revoke one of your tokens (admins: anyone's)."""
    tokens = {t.id: t for t in keys.list_api_tokens(session, principal.tenant)}
    token = tokens.get(token_id)
    if token is None or (token.user_id != principal.user.id and not principal.can(Permission.manage_users)):
        raise HTTPException(404, "No such token.")
    keys.revoke_api_token(session, principal.tenant, token_id)
    audit.record(session, actor=principal.actor, action="token.revoke", tenant_id=principal.tenant.id,
                 target=f"{token.name} ({token.prefix}…)", **client_info(request))  # fmt: skip
    session.commit()
    return RedirectResponse(f"/t/{principal.tenant.slug}/settings#tokens", status_code=303)


@router.get("/members", include_in_schema=False)
def members_page(
    request: Request, session: ControlDB, principal: UserManager, error: str | None = None
) -> Response:
    """Members with their role and scope."""
    context = _context(
        request, session, principal, "members", members=members(session, principal.tenant),
        roles=[r.value for r in Role], scope_text=format_scope, error=error,
    )  # fmt: skip
    return render(request, "settings/members.html", context, status_code=400 if error else 200)


@router.post("/members", include_in_schema=False)
def put_member_form(
    request: Request,
    session: ControlDB,
    principal: UserManager,
    email: Annotated[str, Form()],
    role: Annotated[str, Form()],
    scope: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    """Add a member or change one's role and scope."""
    try:
        put_member(session, principal.tenant, email=email, role=role, scope=parse_scope(scope),
                   password=password or None, actor=principal.actor, **client_info(request))  # fmt: skip
    except TenancyError as exc:
        session.rollback()
        return members_page(request, session, principal, error=str(exc))
    session.commit()
    return RedirectResponse(f"/t/{principal.tenant.slug}/settings/members", status_code=303)


def _channel_form(
    session: Session,
    principal: Principal,
    key: str,
    problems: dict[str, str] | None = None,
    submitted: dict[str, object] | None = None,
    **state: object,
) -> dict:
    host = get_host()
    channel = host.channels[key].item
    stored = plugins.public_config(session, principal.tenant, host, key)
    # After an error, show what was typed (never a typed secret) rather than the stored values.
    secrets = plugins.secret_fields(channel.Config)
    stored.update({k: v for k, v in (submitted or {}).items() if k not in secrets})
    return {
        "key": key,
        "label": channel.label,
        "fields": form_fields(channel.Config, stored, problems),
        "open": bool(state),  # folded unless there is an outcome (saved, or errors) to read
        **state,
    }


@router.get("/plugins", include_in_schema=False)
def plugins_page(request: Request, session: ControlDB, principal: SettingsReader) -> Response:
    """Every installed plugin: state, mode, broken reason, and the config form of its channels."""
    host = get_host()
    rows = plugins.settings_of(session, principal.tenant)
    listing = []
    for name, info in sorted(host.plugins.items()):
        row = rows.get(name)
        listing.append({
            "name": name, "distribution": info.distribution, "version": info.version, "broken": info.broken,
            "error": info.error, "enabled": bool(row and row.enabled) and not info.broken,
            "sandbox": row.sandbox if row else True,
            "channel_forms": [] if info.broken else [_channel_form(session, principal, k) for k in info.channels],
        })  # fmt: skip
    context = _context(request, session, principal, "plugins", plugins=listing,
                       can_manage=principal.can(Permission.manage_plugins))  # fmt: skip
    return render(request, "settings/plugins.html", context)


@router.post("/plugins/{plugin}/state", include_in_schema=False)
def plugin_state(
    request: Request,
    plugin: str,
    session: ControlDB,
    principal: PluginManager,
    action: Annotated[str, Form()],
) -> Response:
    """Enable, disable, or switch a plugin between sandbox and live mode."""
    host = get_host()
    if action not in {"enable", "disable", "live", "sandbox"}:
        raise HTTPException(400, f"Unknown action {action!r}.")
    enabled = action != "disable"
    try:
        plugins.set_enabled(session, principal.tenant, host, plugin, enabled,
                            sandbox={"live": False, "sandbox": True, "enable": True}.get(action))  # fmt: skip
    except TenancyError as exc:
        raise HTTPException(404 if "Unknown" in str(exc) else 400, str(exc)) from exc
    audit.record(session, actor=principal.actor, action=f"plugin.{action}", tenant_id=principal.tenant.id,
                 target=plugin, **client_info(request))  # fmt: skip
    session.commit()
    hooks = host.hooks_for({plugin})
    (hooks.on_plugin_enabled if enabled else hooks.on_plugin_disabled)(tenant=principal.tenant.slug)
    return RedirectResponse(f"/t/{principal.tenant.slug}/settings/plugins#plugin-{plugin}", status_code=303)


@router.post("/channels/{channel}/config", include_in_schema=False)
async def channel_config(
    request: Request, channel: str, session: ControlDB, principal: PluginManager
) -> Response:
    """Save a channel's config from its generated form (HTMX swaps the form back in)."""
    host = get_host()
    if channel not in host.channels:
        raise HTTPException(404, f"Unknown channel {channel!r}.")
    posted = await request.form()
    form = {k: v for k, v in posted.items() if isinstance(v, str)}
    config_model = host.channels[channel].item.Config
    stored = plugins.public_config(session, principal.tenant, host, channel)
    too_large = {}
    for name, mode in upload_fields(config_model).items():
        upload = posted.get(name)
        data = await upload.read(MAX_UPLOAD + 1) if isinstance(upload, UploadFile) else b""
        if len(data) > MAX_UPLOAD:
            too_large[name] = f"The file is larger than {MAX_UPLOAD // 1000} KB: is it the right one?"
        elif data:
            form[name] = uploaded_value(data, mode)
        elif name not in plugins.secret_fields(config_model) and stored.get(name):
            form[name] = stored[name]  # no new file: keep the one saved (a blank secret keeps itself)
    values = parse_form(config_model, form)
    try:
        if too_large:
            raise plugins.ConfigError(channel, too_large)
        plugins.save_channel_config(session, principal.tenant, host, channel, values)
    except plugins.ConfigError as exc:
        session.rollback()
        state: dict = {"error": "Not saved: fix the fields marked below.", "problems": exc.problems,
                       "submitted": values}  # fmt: skip
        status = 400
    else:
        audit.record(session, actor=principal.actor, action="plugin.config", tenant_id=principal.tenant.id,
                     target=channel, detail={"fields": sorted(values)}, **client_info(request))  # fmt: skip
        session.commit()
        state, status = {"saved": True}, 200
    ch = _channel_form(session, principal, channel, **state)
    if request.headers.get("hx-request"):
        return render(request, "settings/_channel_config.html",
                      {"ch": ch, "principal": principal, "can_manage": True}, status_code=status)  # fmt: skip
    return RedirectResponse(f"/t/{principal.tenant.slug}/settings/plugins#config-{channel}", status_code=303)


@router.get("/sandbox", include_in_schema=False)
def sandbox_page(
    request: Request, session: ControlDB, principal: SettingsReader, channel: str = ""
) -> Response:
    """The mail catcher of every channel sandbox, refreshed live."""
    context = _context(
        request, session, principal, "sandbox", channel=channel, channels=sorted(get_host().channels),
        requests=recent_requests(principal.tenant.database, channel or None),
    )  # fmt: skip
    return render(request, "settings/sandbox.html", context)


@router.get("/sandbox/requests", include_in_schema=False)
def sandbox_partial(request: Request, principal: SettingsReader, channel: str = "") -> Response:
    """The request list alone (HTMX polling)."""
    requests = recent_requests(principal.tenant.database, channel or None)
    return render(request, "settings/_sandbox_requests.html", {"requests": requests})


def _day(value: str | None, end: bool = False) -> datetime | None:
    if not value:
        return None
    try:
        day = datetime.fromisoformat(value).date()
    except ValueError as exc:
        raise HTTPException(400, f"Invalid date {value!r}: use YYYY-MM-DD.") from exc
    return datetime.combine(day, time.max if end else time.min)


@router.get("/audit", include_in_schema=False)
def audit_page(
    request: Request,
    session: ControlDB,
    principal: AuditReader,
    action: str = "",
    actor: str = "",
    since: str = "",
    until: str = "",
    before: int | None = None,
) -> Response:
    """The tenant's audit log, newest first, with filters."""
    assert principal.tenant.id is not None
    entries = audit.search(session, tenant_id=principal.tenant.id, action=action or None, actor=actor or None,
                           since=_day(since), until=_day(until, end=True), before_id=before, limit=100)  # fmt: skip
    filters = {"action": action, "actor": actor, "since": since, "until": until}
    next_before = entries[-1].id if len(entries) == 100 else None
    context = _context(
        request, session, principal, "audit", entries=entries, actions=audit.actions(session, principal.tenant.id),
        filters=filters, next_before=next_before,
        next_query=urlencode({**{k: v for k, v in filters.items() if v}, "before": next_before}),
    )  # fmt: skip
    return render(request, "settings/audit.html", context)
