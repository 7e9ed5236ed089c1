"""Alembic environment of the control database(s)."""

from alembic import context

from core.db.migrate import run_migrations_online
from core.db.models import CONTROL_METADATA

run_migrations_online(context, CONTROL_METADATA)
