"""Who is calling: a signed-in user (session cookie) or an API token (bearer), and what they may do.

Every route declares the permission it needs with :func:`require` (or is listed as public in
:mod:`web.guard`); a route with neither makes the app refuse to start. Deny by default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from sqlmodel import Session

from core.audit.service import Origin
from core.db.base import utcnow
from core.db.engines import control_session
from core.tenancy.errors import NotFound
from core.tenancy.keys import resolve_api_token
from core.tenancy.models import ApiToken, Membership, Tenant, User
from core.tenancy.roles import Permission, allows
from core.tenancy.tenants import get_tenant
from core.tenancy.users import get_membership, tenants_of


class LoginRequired(Exception):
    """Raised for a page that needs a signed-in user; the app redirects to the login page."""


def db() -> Iterator[Session]:
    """A control-database session for one request."""
    with control_session() as session:
        yield session


ControlDB = Annotated[Session, Depends(db)]


@dataclass(frozen=True)
class Principal:
    """The caller of one request: a user acting in one tenant with one membership."""

    user: User
    tenant: Tenant
    membership: Membership
    token: ApiToken | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"{self.user.email} (token {self.token.prefix}…)" if self.token else self.user.email

    def can(self, permission: Permission) -> bool:
        """Whether this caller's role grants ``permission``."""
        return allows(self.membership.role, permission)


def session_user(request: Request, session: Session) -> User | None:
    """The signed-in user of this browser session, if still active."""
    user_id = request.session.get("user_id")
    if not isinstance(user_id, int):
        return None
    user = session.get(User, user_id)
    if user is None or user.disabled:
        request.session.clear()
        return None
    return user


def page_principal(request: Request, tenant: str, session: ControlDB) -> Principal:
    """A signed-in user who is a member of the tenant named in the URL."""
    user = session_user(request, session)
    if user is None:
        raise LoginRequired()
    try:
        tenant_row = get_tenant(session, tenant)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    membership = get_membership(session, user, tenant_row)
    if membership is None:
        # Same answer as an unknown tenant: a non-member learns nothing about who exists.
        raise HTTPException(404, f"Unknown tenant {tenant!r}: `tessera tenant list` shows the tenants.")
    return Principal(user=user, tenant=tenant_row, membership=membership)


def api_principal(request: Request, session: ControlDB) -> Principal:
    """The caller behind ``Authorization: Bearer <token>``; 401 with the reason otherwise."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise HTTPException(
            401,
            "Missing API token: send 'Authorization: Bearer <token>' (create one under Settings).",
            headers={"WWW-Authenticate": "Bearer"},
        )
    identity = resolve_api_token(session, value.strip())
    if identity is None:
        raise HTTPException(
            401, "Invalid or revoked API token.", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        )
    identity.token.last_used_at = utcnow()
    session.add(identity.token)
    session.commit()
    return Principal(identity.user, identity.tenant, identity.membership, identity.token)


def require(permission: Permission, *, api: bool = False) -> Callable[..., Principal]:
    """A dependency that admits callers whose role grants ``permission`` (403 otherwise)."""
    source = api_principal if api else page_principal

    # A default rather than Annotated: the string annotation could not see the local ``source``.
    def dependency(principal: Principal = Depends(source)) -> Principal:
        if not principal.can(permission):
            raise HTTPException(
                403, f"Your role ({principal.membership.role}) does not allow this ({permission.value})."
            )
        return principal

    dependency.required_permission = permission  # type: ignore[attr-defined]
    return dependency


def user_tenants(session: Session, user: User) -> list[dict[str, Any]]:
    """The tenant switcher's entries for a user."""
    return [{"slug": t.slug, "name": t.name, "role": m.role} for t, m in tenants_of(session, user)]


def client_info(request: Request) -> Origin:
    """Where a request came from, for the audit log."""
    return {
        "ip": request.client.host if request.client else "",
        "user_agent": request.headers.get("user-agent", ""),
    }
