"""Shared fixtures: a fresh installation per test, on SQLite or on the real PostgreSQL server.

``installation`` is parametrized over both backends where a test asks for ``any_backend``;
``sqlite_installation`` and ``postgres_installation`` pin one. Each gets its own data folder and,
on PostgreSQL, its own control database (``tessera_test_<random>``) and tenant databases, all
dropped afterwards.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Imported up front: hypothesis' pytest plugin otherwise imports it at session end, where CPython
# 3.11.7 fails with "AST constructor recursion depth mismatch" and pytest exits 1 after passing.
import hypothesis  # noqa: F401
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from core.bootstrap import migrate_all
from core.db import engines
from core.plugins import reset_host
from core.queue.broker import reset_broker
from core.settings import reset_settings
from core.tenancy.onboarding import NewTenant, onboard_tenant
from tests.fakes.provider import FakeProvider
from tests.support import PASSWORD

POSTGRES_SERVER = os.environ.get("TESSERA_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
# pytest-xdist runs the suite in several processes: each gets a Redis database of its own (14 is
# the benchmarks'), since some tests empty theirs.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
REDIS_SERVER = os.environ.get("TESSERA_TEST_REDIS", f"redis://127.0.0.1:6379/{15 - 2 * _WORKER}")


@dataclass
class Installation:
    """One isolated Tessera installation for a test."""

    backend: str
    data_dir: Path
    env: dict[str, str]

    def tenant(self, slug: str, email: str | None = None, password: str = PASSWORD) -> NewTenant:
        """Create a tenant with an admin (``admin@<slug>.test`` unless given)."""
        with engines.control_session() as session:
            created = onboard_tenant(session, slug, email or f"admin@{slug}.test", password)
            session.commit()
        return created

    def client(self) -> TestClient:
        """A test client of a freshly built app (plugins as currently installed)."""
        from web.app import create_app

        return TestClient(create_app())


def _reset_process_state() -> None:
    reset_settings()
    engines.dispose_engines()
    reset_host()
    reset_broker()


def _drop_postgres_databases(prefix: str) -> None:
    engine = engines.engine_for(engines._postgres_url(f"{POSTGRES_SERVER}/postgres"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        names = conn.execute(
            text("SELECT datname FROM pg_database WHERE datname LIKE :p"), {"p": prefix + "%"}
        )
        for (name,) in list(names):
            if re.fullmatch(r"[a-z0-9_]+", name):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def make_installation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """A factory: ``make_installation("sqlite" | "postgres", redis=False)``."""
    prefixes: list[str] = []

    def make(backend: str, redis: bool = False) -> Installation:
        env = {
            "TESSERA_DATA_DIR": str(tmp_path / "data"),
            "TESSERA_SECRET_KEY": "test-secret-" + uuid.uuid4().hex,
            "TESSERA_PROCESSING_LINGER_SECONDS": "0",  # tests call processing directly and often
        }
        for name in [k for k in os.environ if k.startswith("TESSERA_") and not k.startswith("TESSERA_TEST_")]:
            monkeypatch.delenv(name)
        if backend == "postgres":
            prefix = f"tessera_test_{uuid.uuid4().hex[:10]}"
            prefixes.append(prefix)
            env["TESSERA_DATABASE_URL"] = f"{POSTGRES_SERVER}/{prefix}"
        if redis:
            env["TESSERA_REDIS_URL"] = REDIS_SERVER
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        _reset_process_state()
        migrate_all()
        return Installation(backend=backend, data_dir=tmp_path / "data", env=env)

    yield make
    _reset_process_state()
    for prefix in prefixes:
        _drop_postgres_databases(prefix)
    engines.dispose_engines()


@pytest.fixture
def sqlite_installation(make_installation) -> Installation:
    """An installation on the embedded default (SQLite, in-process queue)."""
    return make_installation("sqlite")


@pytest.fixture
def postgres_installation(make_installation) -> Installation:
    """An installation on the PostgreSQL server."""
    return make_installation("postgres")


@pytest.fixture(params=["sqlite", "postgres"])
def installation(request: pytest.FixtureRequest, make_installation) -> Installation:
    """The same test on both backends."""
    return make_installation(request.param)


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    """A fake messaging provider answering on a local port (the recording channel's counterpart)."""
    with FakeProvider() as running:
        yield running


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests run one after another in one pytest process (``--dist loadgroup``): each drives
    chromium against a `tessera serve` of its own, and two at once would starve each other's server."""
    for item in items:
        if item.get_closest_marker("browser") is not None:
            item.add_marker(pytest.mark.xdist_group("browser"))
