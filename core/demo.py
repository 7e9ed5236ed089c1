"""The demo tenant that ``tessera demo`` sets up, and the place sample data comes from.

:func:`seed_demo_data` runs every function in :data:`SEEDERS` for the demo tenant. Today it adds the
demo team (one member per role, so each role's view of the UI can be tried), its sandboxed
channels' test credentials (:mod:`core.demo_channels`), about a hundred
customers with their timelines (:mod:`core.demo_customers`), a loyalty program applied to them
(:mod:`core.demo_loyalty`), its wallet card issued to the first customers (:mod:`core.demo_wallet`),
sample segments (:mod:`core.demo_segments`), and a draft campaign and
journey (:mod:`core.demo_orchestration`). A feature that wants
sample data (profiles, events, segments, campaigns...) appends a seeder here. Seeders run on every ``tessera demo``, so
each must be idempotent: look for its data first and add only what is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from core.db.engines import control_session
from core.demo_channels import seed_demo_channels
from core.demo_customers import seed_demo_customers
from core.demo_loyalty import seed_demo_loyalty
from core.demo_orchestration import seed_demo_orchestration
from core.demo_segments import seed_demo_segments
from core.demo_wallet import seed_demo_wallet
from core.tenancy.members import put_member
from core.tenancy.models import Tenant
from core.tenancy.roles import Role
from core.tenancy.tenants import get_tenant
from core.tenancy.users import get_membership, get_user_by_email

log = logging.getLogger(__name__)

DEMO_SLUG = "demo"
DEMO_NAME = "Demo Retail"
DEMO_EMAIL = "demo@tessera.local"
DEMO_PASSWORD = "tessera-demo"

Seeder = Callable[[Tenant], None]
"""Adds one kind of sample data to a tenant (open its database with ``engines.tenant_engine``)."""

DEMO_TEAM = {
    "marketer@tessera.local": Role.marketer,
    "analyst@tessera.local": Role.analyst,
    "operator@tessera.local": Role.operator,
}


def seed_demo_team(tenant: Tenant) -> None:
    """One member per role besides the admin, all with the demo password."""
    with control_session() as session:
        for email, role in DEMO_TEAM.items():
            user = get_user_by_email(session, email)
            if user is None or get_membership(session, user, tenant) is None:
                put_member(session, tenant, email=email, role=role, password=DEMO_PASSWORD, actor="demo")
        session.commit()


SEEDERS: list[Seeder] = [
    seed_demo_team,
    seed_demo_channels,
    seed_demo_customers,
    seed_demo_loyalty,
    seed_demo_wallet,
    seed_demo_segments,
    seed_demo_orchestration,
]


def seed_demo_data(tenant_slug: str) -> None:
    """Fill a tenant with sample data by running every seeder; safe to call any number of times.

    Raises :class:`core.tenancy.errors.NotFound` if the tenant does not exist.
    """
    with control_session() as session:
        tenant = get_tenant(session, tenant_slug)
    for seeder in SEEDERS:
        log.info("seeding demo data: %s", getattr(seeder, "__name__", seeder))
        seeder(tenant)
