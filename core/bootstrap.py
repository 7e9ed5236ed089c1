"""Bringing an installation up: databases created and migrated, ready to serve."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from core.db import engines
from core.db.migrate import upgrade
from core.settings import get_settings
from core.tenancy.tenants import list_tenants, provision_database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MigrationReport:
    """What ``migrate`` touched."""

    control: str
    tenants: list[str]


def migrate_all() -> MigrationReport:
    """Create the control database if needed and migrate it and every tenant database to head."""
    settings = get_settings()
    url = engines.control_url(settings)
    if settings.uses_postgres:
        engines.ensure_postgres_database(url)
    upgrade("control", engines.control_engine())
    with engines.control_session() as session:
        tenants = list_tenants(session)
    for tenant in tenants:
        provision_database(tenant)
    log.info("migrated control database and %d tenant database(s)", len(tenants))
    return MigrationReport(
        control=url.render_as_string(hide_password=True), tenants=[t.slug for t in tenants]
    )
