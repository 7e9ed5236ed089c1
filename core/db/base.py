"""Declarative bases: tables of the control database and tables of every tenant database.

Two registries keep two metadata objects, so each kind of database is created and migrated with
exactly its own tables.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import registry
from sqlmodel import SQLModel


class ControlModel(SQLModel, registry=registry()):
    """Base of tables that live in the control database (tenants, users, keys, plugin settings)."""


class TenantModel(SQLModel, registry=registry()):
    """Base of tables that live in each tenant's own database."""


def as_utc(moment: datetime) -> datetime:
    """A stored time made timezone-aware: SQLite gives naive datetimes back, and every stored time is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC, as every timestamp column takes and returns it."""
    return datetime.now(UTC)
