"""Creating a tenant ready to use: its database, an admin, a write key and an API token."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from core.audit.service import record
from core.tenancy.errors import TenancyError
from core.tenancy.keys import issue_api_token, issue_write_key
from core.tenancy.models import Tenant, User
from core.tenancy.roles import Role
from core.tenancy.tenants import create_tenant
from core.tenancy.users import authenticate, create_user, get_user_by_email, set_membership


@dataclass(frozen=True)
class NewTenant:
    """A freshly created tenant with the plain credentials shown once."""

    tenant: Tenant
    admin: User
    write_key: str
    api_token: str


def onboard_tenant(
    session: Session,
    slug: str,
    admin_email: str,
    admin_password: str,
    *,
    name: str | None = None,
    actor: str = "cli",
) -> NewTenant:
    """Create a tenant and make ``admin_email`` its admin (creating the user if new).

    An existing user must give their current password, so nobody can take over an account by
    naming it as the admin of a new tenant. The caller commits.
    """
    user = get_user_by_email(session, admin_email)
    if user is None:
        user = create_user(session, admin_email, admin_password)
    elif authenticate(session, admin_email, admin_password) is None:
        raise TenancyError(f"User {user.email} exists and the password given is not theirs.")
    tenant = create_tenant(session, slug, name=name)
    set_membership(session, user, tenant, Role.admin)
    _, write_key = issue_write_key(session, tenant)
    _, api_token = issue_api_token(session, tenant, user, name="created with the tenant")
    record(session, actor=actor, action="tenant.create", tenant_id=tenant.id, target=slug,
           detail={"admin": user.email})  # fmt: skip
    return NewTenant(tenant=tenant, admin=user, write_key=write_key, api_token=api_token)
