"""The JSON API under ``/api/v1`` (bearer API tokens; the caller's role applies)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from core.audit import service as audit
from core.plugins import get_host
from core.sandbox.service import recent_requests
from core.tenancy import keys
from core.tenancy import plugin_settings as plugins
from core.tenancy.errors import NotFound, TenancyError
from core.tenancy.members import put_member
from core.tenancy.roles import Permission
from core.tenancy.users import members
from web.auth import ControlDB, Principal, client_info, require

router = APIRouter(prefix="/api/v1", tags=["api"])
Member = Annotated[Principal, Depends(require(Permission.read_data, api=True))]
SettingsReader = Annotated[Principal, Depends(require(Permission.read_settings, api=True))]
PluginManager = Annotated[Principal, Depends(require(Permission.manage_plugins, api=True))]
UserManager = Annotated[Principal, Depends(require(Permission.manage_users, api=True))]
AuditReader = Annotated[Principal, Depends(require(Permission.read_audit, api=True))]


class Me(BaseModel):
    """The caller: user, tenant, role and scope."""

    email: str
    tenant: str
    tenant_name: str
    role: str
    scope: dict[str, Any]


class PluginOut(BaseModel):
    """An installed plugin as this tenant sees it."""

    name: str
    distribution: str | None
    version: str | None
    status: str
    error: str | None
    channels: list[str]
    enabled: bool
    mode: str


class PluginStateIn(BaseModel):
    """Enable a plugin, optionally in live mode (default: sandbox)."""

    model_config = ConfigDict(extra="forbid")
    live: bool = False


class TokenIn(BaseModel):
    """A new API token for the caller."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)


class TokenOut(BaseModel):
    """An API token as listed (the value itself is only returned at creation)."""

    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    token: str | None = None


class MemberIn(BaseModel):
    """Add a member or change a member's role and scope."""

    model_config = ConfigDict(extra="forbid")
    email: str
    role: str
    scope: dict[str, list[str]] = {}
    password: str | None = None


class MemberOut(BaseModel):
    """A member of the tenant."""

    email: str
    role: str
    scope: dict[str, Any]


class AuditOut(BaseModel):
    """One audit log entry."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    ip: str


class SandboxRequestOut(BaseModel):
    """One request a channel sandbox received."""

    id: int
    at: datetime
    channel: str
    method: str
    path: str
    query: str
    headers: dict[str, Any]
    body: str
    status_code: int
    response_body: str


def _bad_request(exc: TenancyError) -> HTTPException:
    return HTTPException(404 if isinstance(exc, NotFound) else 400, str(exc))


@router.get("/me", response_model=Me)
def me(principal: Member) -> Me:
    """Who the token acts as."""
    m = principal.membership
    return Me(email=principal.user.email, tenant=principal.tenant.slug, tenant_name=principal.tenant.name,
              role=m.role, scope=m.scope)  # fmt: skip


@router.get("/plugins", response_model=list[PluginOut])
def list_plugins(session: ControlDB, principal: SettingsReader) -> list[PluginOut]:
    """Installed plugins, whether they work, and whether this tenant enabled them."""
    rows = plugins.settings_of(session, principal.tenant)
    out = []
    for name, info in sorted(get_host().plugins.items()):
        row = rows.get(name)
        out.append(PluginOut(
            name=name, distribution=info.distribution, version=info.version,
            status="broken" if info.broken else "ok", error=info.error, channels=info.channels,
            enabled=bool(row and row.enabled) and not info.broken,
            mode="sandbox" if (row is None or row.sandbox) else "live",
        ))  # fmt: skip
    return out


@router.post("/plugins/{name}/enable", response_model=PluginOut)
def enable_plugin(
    name: str,
    request: Request,
    session: ControlDB,
    principal: PluginManager,
    body: PluginStateIn | None = None,
) -> PluginOut:
    """Enable a plugin for this tenant (sandbox mode unless ``live`` is true)."""
    return _set_state(name, True, not (body and body.live), request, session, principal)


@router.post("/plugins/{name}/disable", response_model=PluginOut)
def disable_plugin(name: str, request: Request, session: ControlDB, principal: PluginManager) -> PluginOut:
    """Disable a plugin for this tenant: nothing of it is called for this tenant any more."""
    return _set_state(name, False, None, request, session, principal)


def _set_state(
    name: str, enabled: bool, sandbox: bool | None, request: Request, session: ControlDB, principal: Principal
) -> PluginOut:
    host = get_host()
    try:
        plugins.set_enabled(session, principal.tenant, host, name, enabled, sandbox=sandbox)
    except TenancyError as exc:
        raise _bad_request(exc) from exc
    audit.record(session, actor=principal.actor, action="plugin.enable" if enabled else "plugin.disable",
                 tenant_id=principal.tenant.id, target=name, **client_info(request))  # fmt: skip
    session.commit()
    hooks = host.hooks_for({name})
    (hooks.on_plugin_enabled if enabled else hooks.on_plugin_disabled)(tenant=principal.tenant.slug)
    return next(p for p in list_plugins(session, principal) if p.name == name)


@router.get("/channels/{channel}/config")
def get_channel_config(channel: str, session: ControlDB, principal: PluginManager) -> dict[str, Any]:
    """A channel's stored config; secrets read as ``**********`` when set."""
    try:
        return plugins.public_config(session, principal.tenant, get_host(), channel)
    except TenancyError as exc:
        raise _bad_request(exc) from exc


@router.put("/channels/{channel}/config")
def put_channel_config(
    channel: str, values: dict[str, Any], request: Request, session: ControlDB, principal: PluginManager
) -> dict[str, Any]:
    """Replace a channel's config (validated by its model; an omitted or empty secret is kept)."""
    host = get_host()
    try:
        plugins.save_channel_config(session, principal.tenant, host, channel, values)
    except plugins.ConfigError as exc:
        raise HTTPException(422, {"message": str(exc), "problems": exc.problems}) from exc
    except TenancyError as exc:
        raise _bad_request(exc) from exc
    audit.record(session, actor=principal.actor, action="plugin.config", tenant_id=principal.tenant.id,
                 target=channel, detail={"fields": sorted(values)}, **client_info(request))  # fmt: skip
    session.commit()
    return plugins.public_config(session, principal.tenant, host, channel)


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(session: ControlDB, principal: Member) -> list[TokenOut]:
    """The caller's tokens (admins: everyone's)."""
    tokens = keys.list_api_tokens(session, principal.tenant)
    if not principal.can(Permission.manage_users):
        tokens = [t for t in tokens if t.user_id == principal.user.id]
    return [TokenOut.model_validate(t, from_attributes=True) for t in tokens]


@router.post("/tokens", response_model=TokenOut, status_code=201)
def create_token(body: TokenIn, request: Request, session: ControlDB, principal: Member) -> TokenOut:
    """A new token for the caller; ``token`` is returned this once."""
    token, plain = keys.issue_api_token(session, principal.tenant, principal.user, body.name)
    audit.record(session, actor=principal.actor, action="token.create", tenant_id=principal.tenant.id,
                 target=f"{body.name} ({token.prefix}…)", **client_info(request))  # fmt: skip
    session.commit()
    return TokenOut.model_validate(token, from_attributes=True).model_copy(update={"token": plain})


@router.delete("/tokens/{token_id}", response_model=TokenOut)
def revoke_token(token_id: int, request: Request, session: ControlDB, principal: Member) -> TokenOut:
    """Revoke one of the caller's tokens (admins: anyone's)."""
    mine = {t.id for t in list_tokens(session, principal)}
    if token_id not in mine:
        raise HTTPException(404, f"No API token {token_id} here.")
    token = keys.revoke_api_token(session, principal.tenant, token_id)
    audit.record(session, actor=principal.actor, action="token.revoke", tenant_id=principal.tenant.id,
                 target=f"{token.name} ({token.prefix}…)", **client_info(request))  # fmt: skip
    session.commit()
    return TokenOut.model_validate(token, from_attributes=True)


@router.get("/write-keys")
def list_write_keys(session: ControlDB, principal: SettingsReader) -> list[dict[str, Any]]:
    """The tenant's active ingestion write keys."""
    return [{"name": k.name, "write_key": plain, "created_at": k.created_at}
            for k, plain in keys.write_keys(session, principal.tenant)]  # fmt: skip


@router.get("/members", response_model=list[MemberOut])
def list_members(session: ControlDB, principal: UserManager) -> list[MemberOut]:
    """Members with role and scope."""
    return [
        MemberOut(email=u.email, role=m.role, scope=m.scope) for u, m in members(session, principal.tenant)
    ]


@router.put("/members", response_model=MemberOut)
def upsert_member(body: MemberIn, request: Request, session: ControlDB, principal: UserManager) -> MemberOut:
    """Add a member (a new user needs ``password``) or change a member's role and scope."""
    try:
        m = put_member(session, principal.tenant, email=body.email, role=body.role, scope=body.scope,
                       password=body.password, actor=principal.actor, **client_info(request))  # fmt: skip
    except TenancyError as exc:
        raise _bad_request(exc) from exc
    session.commit()
    return MemberOut(email=body.email.strip().lower(), role=m.role, scope=m.scope)


@router.get("/audit", response_model=list[AuditOut])
def audit_log(
    session: ControlDB,
    principal: AuditReader,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditOut]:
    """The tenant's audit log, newest first."""
    assert principal.tenant.id is not None
    entries = audit.search(session, tenant_id=principal.tenant.id, action=action, actor=actor, since=since,
                           until=until, before_id=before_id, limit=limit)  # fmt: skip
    return [AuditOut.model_validate(e, from_attributes=True) for e in entries]


@router.get("/sandbox/requests", response_model=list[SandboxRequestOut])
def list_sandbox_requests(
    principal: SettingsReader, channel: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[SandboxRequestOut]:
    """What the tenant's channel sandboxes received, newest first (``channel=NAME`` to filter)."""
    rows = recent_requests(principal.tenant.database, channel, limit)
    return [SandboxRequestOut.model_validate(r, from_attributes=True) for r in rows]
