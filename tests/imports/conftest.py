"""Import fixtures: a tenant "acme", CSV files written on the fly, and a helper that maps a file
automatically (plus overrides), creates its run and runs it in-process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, func, select

from core.db.engines import tenant_session
from core.imports import service
from core.imports.models import ImportRun
from core.ingest.models import Event
from core.tenancy.onboarding import NewTenant

TENANT = "acme"


@pytest.fixture
def acme(installation) -> NewTenant:
    """The tenant, on SQLite and on PostgreSQL."""
    return installation.tenant(TENANT)


@pytest.fixture
def acme_sqlite(sqlite_installation) -> NewTenant:
    """The tenant, on SQLite only."""
    return sqlite_installation.tenant(TENANT)


@pytest.fixture
def csv_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a CSV file (text is written as UTF-8, bytes as they are) and return its path."""
    counter = iter(range(1_000_000))

    def write(content: str | bytes, name: str | None = None) -> Path:
        path = tmp_path / (name or f"file{next(counter)}.csv")
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return path

    return write


def run_import(path: Path, kind: str, overrides: dict[str, str] | None = None, **options: Any) -> ImportRun:
    """Map ``path`` (automatically, plus ``overrides``), create its run and run it now."""
    context = service.tenant_context(TENANT)
    found = service.preview(path, kind, context, overrides)
    assert found.problem is None, found.problem
    with tenant_session(context.database) as session:
        run = service.create_run(session, context, kind=kind, filename=path.name, path=path,
                                 mapping=found.mapping, created_by="test", queue=False)  # fmt: skip
        session.commit()
    assert run.id is not None
    return service.run_import(TENANT, run.id, **options)


@pytest.fixture
def importer() -> Callable[..., ImportRun]:
    """:func:`run_import`."""
    return run_import


def event_count(session: Session) -> int:
    """How many events the tenant holds."""
    return session.exec(select(func.count()).select_from(Event)).one()


@pytest.fixture
def events() -> Callable[[NewTenant], list[Event]]:
    """Every event of a tenant, in insertion order."""

    def read(tenant: NewTenant) -> list[Event]:
        with tenant_session(tenant.tenant.database) as session:
            return list(session.exec(select(Event).order_by(col(Event.id))))

    return read
