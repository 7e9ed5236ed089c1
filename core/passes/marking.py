"""Marking profiles whose passes may need re-issuing, in the transaction of whatever changed them.

Kept apart from :mod:`core.passes.updates` so that ingestion and loyalty can call it without
importing the pass machinery.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from core.db.base import utcnow
from core.db.engines import control_session, tenant_engine
from core.passes.models import PassRefresh, PassState, WalletPass
from core.queue.outbox import ensure_job
from core.tenancy.tenants import get_tenant

log = logging.getLogger(__name__)
REFRESH = "core.passes.refresh"
WALLET_PASS = WalletPass.__table__  # type: ignore[attr-defined]
PASS_REFRESH = PassRefresh.__table__  # type: ignore[attr-defined]


def mark_changed(session: Session, tenant_slug: str, profile_ids: Collection[str]) -> int:
    """Mark these profiles' live passes for re-issue (in the caller's transaction); how many profiles.

    Cheap when nobody holds a pass: one indexed query finds none and nothing is written.
    """
    if not profile_ids:
        return 0
    holders = sorted({
        pid for (pid,) in session.connection().execute(
            sa.select(WALLET_PASS.c.profile_id).where(
                WALLET_PASS.c.profile_id.in_(list(profile_ids)), WALLET_PASS.c.state == PassState.active.value
            ).distinct()
        )
    })  # fmt: skip
    if not holders:
        return 0
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    now = utcnow()
    statement = dialect.insert(PASS_REFRESH).values(
        [{"profile_id": pid, "marked_at": now} for pid in holders]
    )
    # A mark already there gets this moment: a refresh job that read it before this change
    # deletes only the marks it read (see core.passes.updates), so this one stays for its next round.
    statement = statement.on_conflict_do_update(
        index_elements=["profile_id"], set_={"marked_at": statement.excluded.marked_at}
    )
    session.connection().execute(statement)
    ensure_job(session, tenant_slug, REFRESH)
    return len(holders)


def mark_changed_now(tenant_slug: str, profile_ids: Collection[str]) -> None:
    """:func:`mark_changed` in its own transaction (for callers that already committed). Never raises."""
    if not profile_ids:
        return
    try:
        with control_session() as control:
            tenant = get_tenant(control, tenant_slug)
        with Session(tenant_engine(tenant.database)) as session:
            mark_changed(session, tenant_slug, profile_ids)
            session.commit()
    except Exception:  # a pass that lags must never undo what changed the profile
        log.exception("marking passes for re-issue failed for %s", tenant_slug)
