"""Adding members to a tenant and changing their role or scope, with an audit entry each time."""

from __future__ import annotations

import re
from typing import Any

from sqlmodel import Session

from core.audit.service import record
from core.tenancy.errors import TenancyError
from core.tenancy.models import Membership, Tenant
from core.tenancy.roles import Role
from core.tenancy.users import (
    create_user,
    get_membership,
    get_user_by_email,
    members,
    normalize_email,
    set_membership,
)

SCOPE_KEYS = frozenset({"country", "brand"})


def parse_scope(text: str) -> dict[str, list[str]]:
    """Read ``"country=FR,DE; brand=acme"`` into ``{"country": ["FR", "DE"], "brand": ["acme"]}``."""
    scope: dict[str, list[str]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, sep, values = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in SCOPE_KEYS:
            raise TenancyError(f"Invalid scope {part!r}: write e.g. 'country=FR,DE; brand=acme'.")
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not items or any(not re.fullmatch(r"[\w-]{1,64}", v) for v in items):
            raise TenancyError(f"Invalid values in scope {part!r}.")
        scope[key] = items
    return scope


def format_scope(scope: dict[str, Any]) -> str:
    """The text form of a scope, as :func:`parse_scope` reads it."""
    return "; ".join(f"{key}={','.join(values)}" for key, values in sorted(scope.items()))


def put_member(
    session: Session,
    tenant: Tenant,
    *,
    email: str,
    role: str,
    scope: dict[str, list[str]] | None = None,
    password: str | None = None,
    actor: str,
    ip: str = "",
    user_agent: str = "",
) -> Membership:
    """Add a user (created with ``password`` if new) to the tenant, or change their role and scope.

    The last admin of a tenant cannot be demoted, so a tenant is never left without one.
    """
    email = normalize_email(email)
    user = get_user_by_email(session, email)
    created = user is None
    if user is None:
        if not password:
            raise TenancyError(f"{email} has no account yet: give an initial password to create it.")
        user = create_user(session, email, password)
    before = get_membership(session, user, tenant)
    previous = before.role if before else None
    if previous == Role.admin and role != Role.admin:
        admins = [m for _, m in members(session, tenant) if m.role == Role.admin]
        if len(admins) <= 1:
            raise TenancyError(f"{email} is the last admin of {tenant.slug}; make someone else admin first.")
    membership = set_membership(session, user, tenant, role, scope)
    record(
        session,
        actor=actor,
        action="member.add" if previous is None else "member.change",
        tenant_id=tenant.id,
        target=email,
        detail={
            "role": membership.role,
            "previous_role": previous,
            "scope": membership.scope,
            "new_user": created,
        },
        ip=ip,
        user_agent=user_agent,
    )
    return membership
