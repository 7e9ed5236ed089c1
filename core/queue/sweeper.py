"""The sweeper: re-sends due jobs whose message was lost or whose worker died, and queues
periodic jobs (a :class:`~core.plugin_api.JobType` with ``every``) once per period.

Runs beside every worker (and inside ``serve`` on the embedded default). Running several is
safe: a job is claimed atomically, so a duplicate message does nothing.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy import or_
from sqlmodel import Session, col, select

from core.db import engines
from core.db.base import utcnow
from core.plugins import get_host
from core.queue.actors import send_job
from core.queue.models import Job, JobStatus
from core.queue.outbox import add_job, next_resend
from core.settings import get_settings
from core.tenancy.plugin_settings import enabled_plugins
from core.tenancy.tenants import list_tenants

log = logging.getLogger(__name__)


def sweep_tenant(tenant: str, database: str) -> int:
    """Re-send the messages of the tenant's jobs that are due and still unclaimed, or whose lease
    expired, once their ``resend_at`` has come; how many."""
    now = utcnow()
    lost = (col(Job.status) == JobStatus.pending) & (col(Job.due_at) <= now)
    abandoned = (col(Job.status) == JobStatus.running) & (col(Job.lease_until) < now)
    come = or_(col(Job.resend_at).is_(None), col(Job.resend_at) <= now)
    with Session(engines.tenant_engine(database), expire_on_commit=False) as session:
        jobs = list(session.exec(select(Job).where(or_(lost, abandoned), come).limit(1000)))
        for job in jobs:
            job.enqueued_at, job.resend_at = now, next_resend(job.due_at, now)
            session.add(job)
        session.commit()
    for job in jobs:
        send_job(tenant, job.id, kind=job.kind)
    return len(jobs)


def schedule_periodic(
    tenant: str, database: str, kinds: dict[str, timedelta], now: datetime | None = None
) -> int:
    """Queue each periodic job kind once per its period (idempotent); how many were added."""
    now = now or utcnow()
    added = 0
    with Session(engines.tenant_engine(database), expire_on_commit=False) as session:
        for kind, every in sorted(kinds.items()):
            period = int(now.timestamp() // every.total_seconds())
            key = f"every:{kind}:{period}"
            if session.exec(select(Job.id).where(Job.idempotency_key == key)).first() is None:
                add_job(session, tenant, kind, {}, idempotency_key=key)
                added += 1
        session.commit()
    return added


def sweep_once() -> int:
    """One pass over every tenant; the number of jobs re-sent."""
    with engines.control_session() as control:
        tenants = [(t.slug, t.database) for t in list_tenants(control)]
    total = 0
    for slug, database in tenants:
        try:
            total += sweep_tenant(slug, database)
        except Exception:  # one tenant's broken database must not stop the others
            log.exception("sweeping tenant %s failed", slug)
    return total


def schedule_once(now: datetime | None = None) -> int:
    """Queue every tenant's periodic jobs that are due this period; how many were added."""
    host = get_host()
    with engines.control_session() as control:
        tenants = [(t.slug, t.database, enabled_plugins(control, t, host)) for t in list_tenants(control)]
    added = 0
    for slug, database, enabled in tenants:
        periodic = {key: r.item.every for key, r in host.jobs.items() if r.item.every and r.plugin in enabled}
        try:
            added += schedule_periodic(slug, database, periodic, now) if periodic else 0
        except Exception:  # one tenant's broken database must not stop the others
            log.exception("scheduling periodic jobs of tenant %s failed", slug)
    return added


class Sweeper(threading.Thread):
    """A daemon thread calling :func:`schedule_once` and :func:`sweep_once` every ``sweep_interval_seconds``."""

    def __init__(self) -> None:
        super().__init__(name="tessera-sweeper", daemon=True)
        self.stopped = threading.Event()

    def run(self) -> None:
        interval = get_settings().sweep_interval_seconds
        while not self.stopped.wait(interval):
            try:
                schedule_once()
                sweep_once()
            except Exception:
                log.exception("sweep failed")

    def stop(self) -> None:
        """Ask the thread to finish after its current pass."""
        self.stopped.set()
