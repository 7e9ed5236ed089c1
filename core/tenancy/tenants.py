"""Creating and finding tenants, each with a database of its own."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.db import engines
from core.db.migrate import upgrade
from core.settings import get_settings
from core.tenancy.errors import Conflict, NotFound, TenancyError
from core.tenancy.models import Tenant

SLUG_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,38}[a-z0-9]$")
RESERVED_SLUGS = frozenset({"admin", "api", "static", "login", "logout", "new", "control", "postgres"})


def validate_slug(slug: str) -> str:
    """The slug if it is well formed, else a :class:`TenancyError` saying what is allowed."""
    if not SLUG_PATTERN.fullmatch(slug):
        raise TenancyError(
            f"Invalid tenant slug {slug!r}: use 3-40 characters, lower-case letters, digits and '-', "
            "starting with a letter and not ending with '-'."
        )
    if "--" in slug:
        raise TenancyError(f"Invalid tenant slug {slug!r}: '--' is not allowed.")
    if slug in RESERVED_SLUGS:
        raise TenancyError(f"Tenant slug {slug!r} is reserved; choose another.")
    return slug


def get_tenant(session: Session, slug: str) -> Tenant:
    """The tenant with this slug, or :class:`NotFound`."""
    tenant = session.exec(select(Tenant).where(Tenant.slug == slug)).first()
    if tenant is None:
        raise NotFound(f"Unknown tenant {slug!r}: `tessera tenant list` shows the tenants.")
    return tenant


def list_tenants(session: Session) -> list[Tenant]:
    """Every tenant, by slug."""
    return list(session.exec(select(Tenant).order_by(Tenant.slug)))


def provision_database(tenant: Tenant) -> bool:
    """Create the tenant's database if needed and migrate it to the newest revision.

    Returns True when this call created the database (so only this caller may remove it again).
    """
    url = engines.tenant_url(tenant.database)
    if get_settings().uses_postgres:
        created = engines.ensure_postgres_database(url)
    else:
        assert url.database
        created = not Path(url.database).exists()
    upgrade("tenant", engines.tenant_engine(tenant.database))
    return created


def create_tenant(session: Session, slug: str, name: str | None = None, timezone: str = "UTC") -> Tenant:
    """Register a tenant and create its database. The caller commits ``session``.

    The database is created and migrated before the tenant row is flushed; if either step fails
    (e.g. a concurrent duplicate slug), a database this call created is removed again (never one a
    concurrent winner created) and the caller's other work in ``session`` is left untouched.
    """
    validate_slug(slug)
    if session.exec(select(Tenant).where(Tenant.slug == slug)).first():
        raise Conflict(f"Tenant {slug!r} already exists.")
    tenant = Tenant(
        slug=slug,
        name=name or slug.replace("-", " ").title(),
        database=engines.tenant_database_name(slug),
        timezone=timezone,
    )
    created = False
    try:
        created = provision_database(tenant)
        with session.begin_nested():
            session.add(tenant)
    except Exception as exc:
        if created:
            drop_database(tenant)
        if isinstance(exc, IntegrityError):
            raise Conflict(f"Tenant {slug!r} already exists.") from exc
        raise
    return tenant


def drop_database(tenant: Tenant) -> None:
    """Remove a tenant's database (creation rollback; tenants are not deleted otherwise yet)."""
    url = engines.tenant_url(tenant.database)
    if get_settings().uses_postgres:
        engines.drop_postgres_database(url)
    else:
        engines.forget_engine(url)
        assert url.database
        for suffix in ("", "-wal", "-shm"):
            Path(url.database + suffix).unlink(missing_ok=True)
