"""Writing and reading the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

from sqlmodel import Session, col, select

from core.audit.models import AuditEntry


class Origin(TypedDict):
    """Where an act came from, as :func:`record` takes it (``record(..., **origin)``)."""

    ip: str
    user_agent: str


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    tenant_id: int | None = None,
    target: str = "",
    detail: dict[str, Any] | None = None,
    ip: str = "",
    user_agent: str = "",
) -> AuditEntry:
    """Append one entry (committed with the caller's transaction, so it is kept iff the act is)."""
    entry = AuditEntry(
        actor=actor,
        action=action,
        tenant_id=tenant_id,
        target=target,
        detail=detail or {},
        ip=ip,
        user_agent=user_agent[:300],
    )
    session.add(entry)
    return entry


def search(
    session: Session,
    *,
    tenant_id: int,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[AuditEntry]:
    """Entries of one tenant, newest first, filtered; page with ``before_id``."""
    query = select(AuditEntry).where(AuditEntry.tenant_id == tenant_id)
    if action:
        query = query.where(AuditEntry.action == action)
    if actor:
        query = query.where(col(AuditEntry.actor).contains(actor))
    if since:
        query = query.where(AuditEntry.at >= since)
    if until:
        query = query.where(AuditEntry.at <= until)
    if before_id:
        query = query.where(col(AuditEntry.id) < before_id)
    return list(session.exec(query.order_by(col(AuditEntry.id).desc()).limit(limit)))


def actions(session: Session, tenant_id: int) -> list[str]:
    """The distinct actions recorded for a tenant (for the filter menu)."""
    query = select(AuditEntry.action).where(AuditEntry.tenant_id == tenant_id).distinct()
    return sorted(session.exec(query))
