"""Alembic environment of the tenant database(s)."""

from alembic import context

from core.db.migrate import run_migrations_online
from core.db.models import TENANT_METADATA

run_migrations_online(context, TENANT_METADATA)
