"""The durable job that folds accepted events into profiles, and what it tells plugins."""

from __future__ import annotations

import logging
import time
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from core.db.engines import control_session, tenant_engine
from core.journeys.triggers import after_processing
from core.loyalty import engine as loyalty
from core.passes.marking import mark_changed
from core.plugins import get_host
from core.profiles.resolution import has_pending_events, ingest_pending
from core.profiles.snapshots import snapshot
from core.queue.outbox import release_coalesced
from core.segments.jobs import after_profiles_changed
from core.settings import get_settings
from core.tenancy.plugin_settings import enabled_plugins
from core.tenancy.tenants import get_tenant
from core.traits.service import refresh_profiles

log = logging.getLogger(__name__)
PROCESS_EVENTS = "core.process_events"
# Events per transaction, first and at most. Each batch replays the history of the people it
# touches, so a backlog (an import, a backfill) goes faster in bigger batches: a full batch doubles
# the next one, up to the most. On SQLite a batch holds the database's only write lock, which
# ingestion waits for: it stays short there.
BATCH = {"postgresql": 50_000, "sqlite": 20_000}
MAX_BATCH = {"postgresql": 400_000, "sqlite": 20_000}


def identifier_types_for(enabled: set[str]) -> dict[str, Any]:
    """The identifier types of the core and of the plugins a tenant enabled, by key."""
    return {key: r.item for key, r in get_host().identifier_types.items() if r.plugin in enabled}


def process_events(tenant_slug: str, payload: dict[str, Any]) -> None:
    """Fold every pending event of the tenant into profiles, a batch per transaction, in order."""
    host = get_host()
    with control_session() as control:
        tenant = get_tenant(control, tenant_slug)
        enabled = enabled_plugins(control, tenant, host)
    types = identifier_types_for(enabled)
    hooks = host.hooks_for(enabled)
    engine = tenant_engine(tenant.database)
    dialect = engine.dialect.name if engine.dialect.name in BATCH else "sqlite"
    batch = BATCH[dialect]
    while True:
        with Session(engine, expire_on_commit=False) as session:
            handled, outcome = ingest_pending(session, types, tenant.default_region, limit=batch)
            # A buyer's computed traits change right after an order, not at the next daily refit.
            refresh_profiles(session, outcome.purchasers, zone=ZoneInfo(tenant.timezone))
            mark_changed(session, tenant_slug, outcome.changed_profiles | outcome.purchasers)  # live passes
            session.commit()
        # Segment entry and exit in real time, for the profiles this batch changed.
        after_profiles_changed(tenant, outcome.changed_profiles | outcome.purchasers, enabled)
        after_processing(tenant, enabled)  # journeys and goals follow the new events (never raises)
        loyalty.after_processing(tenant)  # points, challenges and referrals (in their own jobs)
        if hooks.on_profile_changed.get_hookimpls():  # snapshots cost queries: only for listeners
            _tell_plugins(hooks, tenant_slug, engine, sorted(outcome.changed_profiles))
        if handled == batch:
            batch = min(2 * batch, MAX_BATCH[dialect])
        else:
            batch = BATCH[dialect]
            if handled == 0 and not _more_to_do(engine):
                return
            # Caught up: under a steady stream, wait a moment so the next pass takes a batch worth
            # its fixed cost, instead of ending and being queued again for a handful of events.
            time.sleep(get_settings().processing_linger_seconds)


def _more_to_do(engine: Any) -> bool:
    """Whether events arrived meanwhile; if none, the job ends and the next ingest queues another."""
    with Session(engine) as session:
        more = release_coalesced(session, PROCESS_EVENTS, lambda: has_pending_events(session))
        session.commit()
    return more


def _tell_plugins(hooks: Any, tenant_slug: str, engine: Any, profile_ids: list[str]) -> None:
    with Session(engine) as session:
        for profile_id in profile_ids:
            profile = snapshot(session, profile_id)
            if profile is None:
                continue
            try:
                hooks.on_profile_changed(tenant=tenant_slug, profile=profile, changed=["profile"])
            except Exception:  # a plugin's failure must not stop ingestion
                log.exception("on_profile_changed failed for %s/%s", tenant_slug, profile.id)
