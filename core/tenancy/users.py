"""Users, their memberships (role and scope per tenant), and signing in."""

from __future__ import annotations

import re
from typing import Any

from sqlmodel import Session, col, select

from core.tenancy.errors import Conflict, NotFound, TenancyError
from core.tenancy.models import Membership, Tenant, User
from core.tenancy.passwords import DUMMY_HASH, MIN_LENGTH, hash_password, verify_password
from core.tenancy.roles import Role

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalize_email(email: str) -> str:
    """The trimmed, lower-cased address, or :class:`TenancyError` if it is not one."""
    email = email.strip().lower()
    if not EMAIL_PATTERN.match(email):
        raise TenancyError(f"{email!r} is not an email address.")
    return email


def get_user_by_email(session: Session, email: str) -> User | None:
    """The user with this address, if any."""
    return session.exec(select(User).where(User.email == email.strip().lower())).first()


def create_user(session: Session, email: str, password: str, name: str = "") -> User:
    """A new user with an argon2 password hash."""
    email = normalize_email(email)
    if len(password) < MIN_LENGTH:
        raise TenancyError(f"The password must have at least {MIN_LENGTH} characters.")
    if get_user_by_email(session, email):
        raise Conflict(f"A user with the email {email} already exists.")
    user = User(email=email, password_hash=hash_password(password), name=name)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The user if the password matches and the account is active, else None."""
    user = get_user_by_email(session, email)
    if user is None:
        verify_password(DUMMY_HASH, password)
        return None
    if user.disabled or not verify_password(user.password_hash, password):
        return None
    return user


def set_membership(
    session: Session, user: User, tenant: Tenant, role: Role | str, scope: dict[str, Any] | None = None
) -> Membership:
    """Give ``user`` a role (and scope) in ``tenant``, replacing what they had."""
    try:
        role = Role(role)
    except ValueError as exc:
        roles = ", ".join(r.value for r in Role)
        raise TenancyError(f"Unknown role {role!r}: use one of {roles}.") from exc
    membership = get_membership(session, user, tenant)
    if membership is None:
        assert user.id is not None and tenant.id is not None
        membership = Membership(user_id=user.id, tenant_id=tenant.id, role=role.value, scope=scope or {})
    else:
        membership.role = role.value
        membership.scope = scope or {}
    session.add(membership)
    session.flush()
    return membership


def get_membership(session: Session, user: User, tenant: Tenant) -> Membership | None:
    """The user's membership in the tenant, if any."""
    query = select(Membership).where(Membership.user_id == user.id, Membership.tenant_id == tenant.id)
    return session.exec(query).first()


def tenants_of(session: Session, user: User) -> list[tuple[Tenant, Membership]]:
    """The tenants a user belongs to, with their membership, by slug."""
    query = (
        select(Tenant, Membership)
        .join(Membership, col(Membership.tenant_id) == Tenant.id)
        .where(Membership.user_id == user.id)
        .order_by(Tenant.slug)
    )
    return [(tenant, membership) for tenant, membership in session.exec(query)]


def members(session: Session, tenant: Tenant) -> list[tuple[User, Membership]]:
    """The members of a tenant with their membership, by email."""
    query = (
        select(User, Membership)
        .join(Membership, col(Membership.user_id) == User.id)
        .where(Membership.tenant_id == tenant.id)
        .order_by(User.email)
    )
    return [(user, membership) for user, membership in session.exec(query)]


def require_user(session: Session, user_id: int) -> User:
    """The user with this id, or :class:`NotFound`."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"No user with id {user_id}.")
    return user
