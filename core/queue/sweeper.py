"""The sweeper: re-sends due jobs whose message was lost or whose worker died.

Runs beside every worker (and inside ``serve`` on the embedded default). Running several is
safe: a job is claimed atomically, so a duplicate message does nothing.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy import or_
from sqlmodel import Session, col, select

from core.db import engines
from core.db.base import utcnow
from core.queue.actors import send_job
from core.queue.models import Job, JobStatus
from core.settings import get_settings
from core.tenancy.tenants import list_tenants

log = logging.getLogger(__name__)
REQUEUE_GRACE = timedelta(seconds=30)


def sweep_tenant(tenant: str, database: str, grace: timedelta = REQUEUE_GRACE) -> int:
    """Re-send the tenant's jobs that are due and unclaimed, or whose lease expired; how many."""
    now = utcnow()
    stale = or_(col(Job.enqueued_at).is_(None), col(Job.enqueued_at) < now - grace)
    lost = (col(Job.status) == JobStatus.pending) & (col(Job.due_at) <= now) & stale
    abandoned = (col(Job.status) == JobStatus.running) & (col(Job.lease_until) < now)
    with Session(engines.tenant_engine(database), expire_on_commit=False) as session:
        jobs = list(session.exec(select(Job).where(or_(lost, abandoned)).limit(1000)))
        for job in jobs:
            job.enqueued_at = now
            session.add(job)
        session.commit()
    for job in jobs:
        send_job(tenant, job.id)
    return len(jobs)


def sweep_once(grace: timedelta = REQUEUE_GRACE) -> int:
    """One pass over every tenant; the number of jobs re-sent."""
    with engines.control_session() as control:
        tenants = [(t.slug, t.database) for t in list_tenants(control)]
    total = 0
    for slug, database in tenants:
        try:
            total += sweep_tenant(slug, database, grace)
        except Exception:  # one tenant's broken database must not stop the others
            log.exception("sweeping tenant %s failed", slug)
    return total


class Sweeper(threading.Thread):
    """A daemon thread calling :func:`sweep_once` every ``sweep_interval_seconds``."""

    def __init__(self) -> None:
        super().__init__(name="tessera-sweeper", daemon=True)
        self.stopped = threading.Event()

    def run(self) -> None:
        interval = get_settings().sweep_interval_seconds
        while not self.stopped.wait(interval):
            try:
                sweep_once()
            except Exception:
                log.exception("sweep failed")

    def stop(self) -> None:
        """Ask the thread to finish after its current pass."""
        self.stopped.set()
