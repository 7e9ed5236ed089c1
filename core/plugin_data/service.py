"""Reading and writing a plugin's records in one tenant's database, each write committed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from core.db.base import as_utc, utcnow
from core.db.engines import control_session, tenant_engine
from core.plugin_data.models import PluginRecord
from core.tenancy.tenants import get_tenant


class PluginData:
    """One plugin's records for one tenant: JSON values by key (see ``core.plugin_api.plugin_data``)."""

    def __init__(self, tenant: str, plugin: str) -> None:
        with control_session() as control:
            self._engine = tenant_engine(get_tenant(control, tenant).database)
        self.plugin = plugin

    def _row(self, session: Session, key: str) -> PluginRecord | None:
        query = select(PluginRecord).where(PluginRecord.plugin == self.plugin, PluginRecord.key == key)
        return session.exec(query).first()

    def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default``."""
        with Session(self._engine) as session:
            row = self._row(session, key)
            return default if row is None else row.value

    def updated_at(self, key: str) -> datetime | None:
        """When ``key`` was last written, or None if it never was."""
        with Session(self._engine) as session:
            row = self._row(session, key)
            return None if row is None else as_utc(row.updated_at)

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` (anything JSON can hold) under ``key``, replacing what was there."""
        with Session(self._engine) as session:
            row = self._row(session, key) or PluginRecord(plugin=self.plugin, key=key)
            row.value, row.updated_at = value, utcnow()
            session.add(row)
            session.commit()

    def delete(self, key: str) -> None:
        """Forget ``key`` (nothing happens if it is not stored)."""
        with Session(self._engine) as session:
            row = self._row(session, key)
            if row is not None:
                session.delete(row)
                session.commit()

    def keys(self, prefix: str = "") -> list[str]:
        """The stored keys starting with ``prefix``, sorted."""
        with Session(self._engine) as session:
            query = select(PluginRecord.key).where(PluginRecord.plugin == self.plugin)
            if prefix:
                query = query.where(col(PluginRecord.key).startswith(prefix, autoescape=True))
            return sorted(session.exec(query))
