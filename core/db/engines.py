"""Engines and sessions for the control database and the per-tenant databases.

Embedded default: ``<data_dir>/control.db`` and ``<data_dir>/tenants/<slug>.db`` (SQLite).
PostgreSQL: the control database is the one named in ``TESSERA_DATABASE_URL``; each tenant gets a
database of its own on the same server, named ``<control>_t_<slug>``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session

from core.settings import Settings, get_settings

_lock = threading.Lock()
_engines: dict[str, Engine] = {}


def _postgres_url(raw: str) -> URL:
    url = make_url(raw)
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def control_url(settings: Settings | None = None) -> URL:
    """The SQLAlchemy URL of the control database."""
    settings = settings or get_settings()
    if settings.uses_postgres:
        assert settings.database_url
        return _postgres_url(settings.database_url)
    return make_url(f"sqlite:///{(settings.data_dir / 'control.db').resolve()}")


def tenant_database_name(slug: str, settings: Settings | None = None) -> str:
    """The name of a tenant's database: a PostgreSQL database name, or a SQLite file name."""
    settings = settings or get_settings()
    if settings.uses_postgres:
        return f"{control_url(settings).database}_t_{slug.replace('-', '_')}"
    return f"{slug}.db"


def tenant_url(database: str, settings: Settings | None = None) -> URL:
    """The SQLAlchemy URL of a tenant database, from the name stored on the tenant row."""
    settings = settings or get_settings()
    if settings.uses_postgres:
        return control_url(settings).set(database=database)
    return make_url(f"sqlite:///{(settings.data_dir / 'tenants' / database).resolve()}")


def _sqlite_savepoint(conn: Connection, _name: str) -> None:
    # pysqlite only opens a transaction before DML, so a SAVEPOINT issued first would be the
    # outermost transaction and its RELEASE would commit. Open the real transaction first.
    # (Reads stay outside transactions, so no stale WAL snapshot makes a later write fail.)
    dbapi_connection = conn.connection.dbapi_connection
    if dbapi_connection is not None and not dbapi_connection.in_transaction:
        dbapi_connection.execute("BEGIN")


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # WAL lets the web process read while the worker writes; busy_timeout waits instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def json_dumps(value: Any) -> str:
    """JSON text of a column value (orjson: several times faster than the standard library)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


_JSON = {"json_serializer": json_dumps, "json_deserializer": orjson.loads}


def engine_for(url: URL) -> Engine:
    """A shared engine per database URL (engines pool connections; make one each)."""
    key = url.render_as_string(hide_password=False)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            if url.get_backend_name() == "sqlite":
                assert url.database
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
                engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10}, **_JSON)
                event.listen(engine, "connect", _sqlite_pragmas)
                event.listen(engine, "savepoint", _sqlite_savepoint)
            else:
                # JIT compiling costs seconds on the big one-off queries of segments and gains
                # nothing on the short, repeated statements Tessera sends.
                engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10,
                                       connect_args={"options": "-c jit=off"}, **_JSON)  # fmt: skip
            _engines[key] = engine
        return engine


def control_engine() -> Engine:
    """The engine of the control database."""
    return engine_for(control_url())


def tenant_engine(database: str) -> Engine:
    """The engine of one tenant's database."""
    return engine_for(tenant_url(database))


@contextmanager
def control_session() -> Iterator[Session]:
    """A session on the control database, committed by the caller."""
    with Session(control_engine(), expire_on_commit=False) as session:
        yield session


def dispose_engines() -> None:
    """Close every pooled connection (tests, and before forking worker processes)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def ensure_postgres_database(url: URL) -> bool:
    """Create the PostgreSQL database named in ``url`` if it does not exist; True if created."""
    admin = engine_for(url.set(database="postgres"))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        exists = conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}
        ).first()
        if exists:
            return False
        conn.execute(text(f'CREATE DATABASE "{url.database}"'))
        return True


def forget_engine(url: URL) -> None:
    """Close and drop the cached engine of one database (before removing that database)."""
    with _lock:
        engine = _engines.pop(url.render_as_string(hide_password=False), None)
    if engine is not None:
        engine.dispose()


def drop_postgres_database(url: URL) -> None:
    """Drop a PostgreSQL database (used when tenant creation fails half-way, and by tests)."""
    forget_engine(url)
    admin = engine_for(url.set(database="postgres"))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))


@contextmanager
def tenant_session(database: str) -> Iterator[Session]:
    """A session on one tenant's database (by the name stored on the tenant row); the caller commits."""
    with Session(tenant_engine(database), expire_on_commit=False) as session:
        yield session
