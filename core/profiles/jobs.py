"""The durable job that folds accepted events into profiles, and what it tells plugins."""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel import Session

from core.db.engines import control_session, tenant_engine
from core.plugins import get_host
from core.profiles.resolution import ingest_pending
from core.profiles.snapshots import snapshot
from core.tenancy.plugin_settings import enabled_plugins
from core.tenancy.tenants import get_tenant

log = logging.getLogger(__name__)
PROCESS_EVENTS = "core.process_events"
BATCH = 5000


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
    while True:
        with Session(tenant_engine(tenant.database), expire_on_commit=False) as session:
            handled, outcome = ingest_pending(session, types, tenant.default_region, limit=BATCH)
            session.commit()
            changed = [snapshot(session, profile_id) for profile_id in sorted(outcome.changed_profiles)]
        hooks = host.hooks_for(enabled)
        for profile in changed:
            if profile is not None:
                try:
                    hooks.on_profile_changed(tenant=tenant_slug, profile=profile, changed=["profile"])
                except Exception:  # a plugin's failure must not stop ingestion
                    log.exception("on_profile_changed failed for %s/%s", tenant_slug, profile.id)
        if handled < BATCH:
            return
