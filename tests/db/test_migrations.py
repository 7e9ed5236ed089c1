"""Migrations create exactly the tables the models describe, on SQLite and on PostgreSQL, and
running them again changes nothing."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from core.bootstrap import migrate_all
from core.db import engines
from core.db.models import CONTROL_METADATA, TENANT_METADATA


def _pending_changes(engine, metadata) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), metadata)


def test_the_migrated_schema_matches_the_models(installation) -> None:
    created = installation.tenant("acme")
    assert _pending_changes(engines.control_engine(), CONTROL_METADATA) == []
    assert _pending_changes(engines.tenant_engine(created.tenant.database), TENANT_METADATA) == []


def test_migrate_is_repeatable_and_reaches_every_tenant(installation) -> None:
    installation.tenant("acme")
    installation.tenant("globex")
    report = migrate_all()
    assert report.tenants == ["acme", "globex"]
    for slug in report.tenants:
        tenant_tables = set(
            inspect(engines.tenant_engine(engines.tenant_database_name(slug))).get_table_names()
        )
        assert {"job", "sandbox_request", "alembic_version"} <= tenant_tables
    control_tables = set(inspect(engines.control_engine()).get_table_names())
    assert "tenant" in control_tables and "job" not in control_tables


def test_each_tenant_has_a_database_of_its_own(installation) -> None:
    first, second = installation.tenant("acme"), installation.tenant("globex")
    assert first.tenant.database != second.tenant.database
    if installation.backend == "postgres":
        url = engines.tenant_url(first.tenant.database)
        assert url.get_backend_name() == "postgresql" and url.database.endswith("_t_acme")
    else:
        assert (installation.data_dir / "tenants" / "acme.db").exists()
