"""Durable segment work: batch evaluation (hourly, after a change, after a refit) and real time.

Real-time evaluation follows event processing for the profiles it changed; batch evaluation
catches what time alone changes ("in the last 30 days" slides), what a refit changes, and anything
a failed real-time pass missed.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import timedelta
from typing import Any

from sqlmodel import Session

from core.db.engines import control_session, tenant_engine
from core.segments.clock import Clock
from core.segments.membership import Changes, reevaluate, refresh_all, refresh_segment
from core.segments.rules import RuleError
from core.segments.service import (
    SegmentNotFound,
    TenantScope,
    check_rule,
    conditions_for,
    get_segment,
    tenant_scope,
)
from core.tenancy.models import Tenant
from core.tenancy.tenants import get_tenant

log = logging.getLogger(__name__)
REFRESH_SEGMENTS = "core.refresh_segments"
EVERY = timedelta(hours=1)


def _scope(tenant_slug: str) -> tuple[Tenant, TenantScope]:
    with control_session() as control:
        tenant = get_tenant(control, tenant_slug)
        return tenant, tenant_scope(control, tenant)


def refresh_segments(tenant_slug: str, payload: dict[str, Any]) -> None:
    """Job handler: evaluate ``payload["segment_id"]`` in batch, or every active segment."""
    tenant, scope = _scope(tenant_slug)
    conditions, clock = scope.conditions, scope.clock
    with Session(tenant_engine(tenant.database), expire_on_commit=False) as session:
        segment_id = payload.get("segment_id")
        if isinstance(segment_id, int):
            try:
                segment = get_segment(session, segment_id)
                rule = check_rule(session, segment.rule, conditions, segment_id)
            except (SegmentNotFound, RuleError) as exc:  # archived meanwhile, or a plugin it uses disabled
                log.warning("segment %s of %s not evaluated: %s", segment_id, tenant_slug, exc)
                return
            refresh_segment(session, segment, rule, clock)
        else:
            refresh_all(session, clock, conditions)
        session.commit()


def after_profiles_changed(
    tenant: Tenant, profile_ids: Collection[str], enabled: Collection[str] | None = None
) -> Changes:
    """Real-time entry and exit for profiles that just changed (own transaction; logged, never raised).

    ``enabled``: the tenant's enabled plugins, when the caller already knows them.
    """
    if not profile_ids:
        return Changes()
    try:
        conditions = (
            _scope(tenant.slug)[1].conditions if enabled is None else conditions_for(frozenset(enabled))
        )
        with Session(tenant_engine(tenant.database), expire_on_commit=False) as session:
            changes = reevaluate(session, sorted(profile_ids), Clock.at(tenant.timezone), conditions)
            session.commit()
            return changes
    except Exception:  # the hourly batch evaluation catches up; the change itself is kept
        log.exception("real-time segment evaluation failed for %s", tenant.slug)
        return Changes()
