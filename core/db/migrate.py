"""Alembic migrations for the control database and for every tenant database.

Two script folders, ``core/migrations/control`` and ``core/migrations/tenant``; each env.py hands
its metadata to :func:`run_migrations_online`. Applied by ``tessera migrate`` and at start.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from sqlalchemy import Engine, MetaData

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
log = logging.getLogger(__name__)


def alembic_config(kind: str, engine: Engine) -> Config:
    """An Alembic config for ``kind`` ("control" or "tenant") bound to an engine."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS / kind))
    config.attributes["engine"] = engine
    return config


def upgrade(kind: str, engine: Engine) -> None:
    """Bring one database to the newest revision of its kind."""
    command.upgrade(alembic_config(kind, engine), "head")


def run_migrations_online(context: EnvironmentContext, metadata: MetaData) -> None:
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
