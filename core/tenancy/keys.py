"""API tokens (bearer, for the JSON API) and write keys (Basic user name, for ingestion).

Both are random and shown once at creation; only a SHA-256 digest is used for look-ups. Write
keys are also kept encrypted because admins need to read them again to configure SDKs.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlmodel import Session, col, select

from core.crypto import decrypt, encrypt, token_digest
from core.db.base import utcnow
from core.tenancy.errors import NotFound
from core.tenancy.models import ApiToken, Membership, Tenant, User, WriteKey

TOKEN_PREFIX = "tsr_"
WRITE_KEY_PREFIX = "wk_"


@dataclass(frozen=True)
class TokenIdentity:
    """Who an API token acts as: the user, in the tenant, with the user's membership there."""

    token: ApiToken
    user: User
    tenant: Tenant
    membership: Membership


def issue_api_token(
    session: Session, tenant: Tenant, user: User, name: str = "default"
) -> tuple[ApiToken, str]:
    """A new API token row and its plain value (which is not stored)."""
    assert tenant.id is not None and user.id is not None
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        tenant_id=tenant.id, user_id=user.id, name=name, prefix=plain[:10], token_digest=token_digest(plain)
    )
    session.add(token)
    session.flush()
    return token, plain


def resolve_api_token(session: Session, plain: str) -> TokenIdentity | None:
    """The identity behind a token, or None if it is unknown, revoked, or its user lost access."""
    token = session.exec(select(ApiToken).where(ApiToken.token_digest == token_digest(plain))).first()
    if token is None or token.revoked_at is not None:
        return None
    user = session.get(User, token.user_id)
    tenant = session.get(Tenant, token.tenant_id)
    if user is None or tenant is None or user.disabled:
        return None
    membership = session.exec(
        select(Membership).where(Membership.user_id == user.id, Membership.tenant_id == tenant.id)
    ).first()
    if membership is None:
        return None
    return TokenIdentity(token=token, user=user, tenant=tenant, membership=membership)


def revoke_api_token(session: Session, tenant: Tenant, token_id: int) -> ApiToken:
    """Revoke a token of this tenant; it stops working at once."""
    token = session.get(ApiToken, token_id)
    if token is None or token.tenant_id != tenant.id:
        raise NotFound(f"No API token {token_id} in tenant {tenant.slug}.")
    token.revoked_at = token.revoked_at or utcnow()
    session.add(token)
    return token


def list_api_tokens(session: Session, tenant: Tenant) -> list[ApiToken]:
    """The tenant's tokens, newest first."""
    query = select(ApiToken).where(ApiToken.tenant_id == tenant.id).order_by(col(ApiToken.id).desc())
    return list(session.exec(query))


def issue_write_key(session: Session, tenant: Tenant, name: str = "default") -> tuple[WriteKey, str]:
    """A new write key for ingestion and its plain value."""
    assert tenant.id is not None
    plain = WRITE_KEY_PREFIX + secrets.token_urlsafe(24)
    key = WriteKey(tenant_id=tenant.id, name=name, key_digest=token_digest(plain), key_sealed=encrypt(plain))
    session.add(key)
    session.flush()
    return key, plain


@dataclass(frozen=True)
class WriteKeyTenant:
    """Where a write key's events go."""

    slug: str
    database: str


def write_key_tenant(session: Session, plain: str) -> WriteKeyTenant | None:
    """The tenant of an active write key, in one query (ingestion asks this on every request)."""
    query = (
        select(Tenant.slug, Tenant.database)
        .join(WriteKey, col(WriteKey.tenant_id) == col(Tenant.id))
        .where(WriteKey.key_digest == token_digest(plain), col(WriteKey.revoked_at).is_(None))
    )
    row = session.exec(query).first()
    return WriteKeyTenant(row[0], row[1]) if row else None


def write_keys(session: Session, tenant: Tenant) -> list[tuple[WriteKey, str]]:
    """The tenant's active write keys with their plain values, for admins to copy."""
    query = select(WriteKey).where(WriteKey.tenant_id == tenant.id, col(WriteKey.revoked_at).is_(None))
    return [(key, decrypt(key.key_sealed)) for key in session.exec(query)]
