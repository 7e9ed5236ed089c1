"""Alembic migrations for the control database and for every tenant database.

Two script folders, ``core/migrations/control`` and ``core/migrations/tenant``; each env.py hands
its metadata to :func:`run_migrations_online`. Applied by ``tessera migrate`` and at start.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, MetaData

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
log = logging.getLogger(__name__)


class MigrationEnvironment(Protocol):
    """What env.py hands over: the ``alembic.context`` module (a proxy to the running environment)."""

    @property
    def config(self) -> Config: ...

    def configure(
        self, *, connection: Connection, target_metadata: MetaData, render_as_batch: bool, compare_type: bool
    ) -> None: ...

    def begin_transaction(self) -> AbstractContextManager[Any]: ...

    def run_migrations(self) -> None: ...


def alembic_config(kind: str, engine: Engine) -> Config:
    """An Alembic config for ``kind`` ("control" or "tenant") bound to an engine."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS / kind))
    config.attributes["engine"] = engine
    return config


def upgrade(kind: str, engine: Engine) -> None:
    """Bring one database to the newest revision of its kind."""
    command.upgrade(alembic_config(kind, engine), "head")


def run_migrations_online(context: MigrationEnvironment, metadata: MetaData) -> None:
    """The body of both env.py files: migrate the engine the caller put in the config."""
    engine: Engine = context.config.attributes["engine"]
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=engine.dialect.name == "sqlite",  # SQLite alters tables by copy
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
