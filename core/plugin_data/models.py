"""The ``plugin_record`` table: one JSON value per (plugin, key) in a tenant's database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field

from core.db.base import TenantModel, utcnow


class PluginRecord(TenantModel, table=True):
    """One value a plugin keeps for a tenant (its synced message templates, say)."""

    __tablename__ = "plugin_record"
    __table_args__ = (UniqueConstraint("plugin", "key", name="uq_plugin_record_key"),)

    id: int | None = Field(default=None, primary_key=True)
    plugin: str = Field(max_length=100)
    key: str = Field(max_length=200)
    value: Any = Field(default=None, sa_column=Column(JSON, nullable=True))
    updated_at: datetime = Field(default_factory=utcnow)
