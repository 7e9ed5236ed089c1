"""The audit log table (control database: logins are not tenant-bound)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field

from core.db.base import ControlModel, utcnow


class AuditEntry(ControlModel, table=True):
    """Who did what, in which tenant, when, and from where. Rows are never updated or deleted."""

    __tablename__ = "audit_entry"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    tenant_id: int | None = Field(default=None, foreign_key="tenant.id", index=True)
    actor: str = Field(max_length=320, index=True)
    action: str = Field(max_length=64, index=True)
    target: str = Field(default="", max_length=320)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    ip: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=300)
