"""The one dramatiq actor: run a job of the outbox by its id, at least once, claimed atomically."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import dramatiq
from sqlalchemy import or_, update
from sqlmodel import Session, col

from core.db import engines
from core.db.base import utcnow
from core.plugin_api import DeliveryError
from core.plugins import get_host
from core.queue.broker import setup_broker
from core.queue.models import Job, JobStatus
from core.queue.outbox import COALESCE_PREFIX, RESEND_AFTER, backoff
from core.settings import get_settings
from core.tenancy.plugin_settings import enabled_plugins
from core.tenancy.tenants import get_tenant

setup_broker()
log = logging.getLogger(__name__)
QUEUE = "tessera"


# Jobs of kinds registered with ``spread``: each worker process takes one at a time from here.
SPREAD_QUEUE = "tessera_spread"


@dramatiq.actor(queue_name=QUEUE, max_retries=0, time_limit=3_600_000)
def run_job(tenant: str, job_id: int) -> None:
    """Run one job of one tenant unless it is done, not due, or another worker holds it."""
    execute_job(tenant, job_id)


@dramatiq.actor(queue_name=SPREAD_QUEUE, max_retries=0, time_limit=3_600_000)
def run_spread_job(tenant: str, job_id: int) -> None:
    """The same, for jobs of ``spread`` kinds (see :class:`~core.plugin_api.JobType`)."""
    execute_job(tenant, job_id)


def send_job(
    tenant: str, job_id: int | None, due_at: datetime | None = None, kind: str | None = None
) -> None:
    """Queue a message for a stored job (of ``kind``, when known), delayed until it is due."""
    assert job_id is not None
    setup_broker()  # binds the actors to the current broker (settings may have changed, e.g. in tests)
    delay_ms = 0
    if due_at is not None:
        delay_ms = max(0, int((due_at - utcnow()).total_seconds() * 1000))
    registered = get_host().jobs.get(kind) if kind else None
    actor = run_spread_job if registered is not None and registered.item.spread else run_job
    actor.send_with_options(args=(tenant, job_id), delay=delay_ms or None)


def _lease_seconds() -> timedelta:
    return timedelta(seconds=get_settings().job_lease_seconds)


def _claim(session: Session, job_id: int) -> Job | None:
    now = utcnow()
    lease = now + _lease_seconds()
    claimable = or_(
        (col(Job.status) == JobStatus.pending) & (col(Job.due_at) <= now),
        (col(Job.status) == JobStatus.running) & (col(Job.lease_until) < now),
    )
    result = session.exec(
        update(Job)
        .where(col(Job.id) == job_id, claimable)
        # Taken: no message of it needs sending again, unless its lease runs out (the sweeper then does).
        .values(status=JobStatus.running, lease_until=lease, attempts=Job.attempts + 1, resend_at=None)
    )
    session.commit()
    if result.rowcount != 1:
        return None
    job = session.get(Job, job_id)
    # End the read's transaction: the handler opens its own sessions, and an idle transaction
    # held here would keep a pooled connection per running job (threads then starve the pool).
    session.commit()
    return job


@contextmanager
def _lease_kept(database: str, job_id: int) -> Iterator[None]:
    """Renew the job's lease while its handler runs, so only a dead worker's job looks abandoned."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(max(_lease_seconds().total_seconds() / 3, 0.2)):
            try:
                with Session(engines.tenant_engine(database)) as session:
                    still_running = (col(Job.id) == job_id) & (col(Job.status) == JobStatus.running)
                    session.exec(
                        update(Job).where(still_running).values(lease_until=utcnow() + _lease_seconds())
                    )
                    session.commit()
            except Exception:  # a missed renewal only risks a duplicate run, never a lost job
                log.exception("renewing the lease of job %s failed", job_id)

    keeper = threading.Thread(target=renew, name=f"lease-{job_id}", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        stop.set()
        keeper.join()


def _released(key: str | None) -> str | None:
    """A finished job keeps its idempotency key, but frees a coalescing one for the next writer."""
    return None if key and key.startswith(COALESCE_PREFIX) else key


def execute_job(tenant_slug: str, job_id: int) -> JobStatus | None:
    """Claim and run a job; returns its new status, or None when there was nothing to do."""
    with engines.control_session() as control:
        tenant = get_tenant(control, tenant_slug)
        enabled = enabled_plugins(control, tenant, get_host())
    with Session(engines.tenant_engine(tenant.database), expire_on_commit=False) as session:
        job = _claim(session, job_id)
        if job is None:
            return None
        registered = get_host().jobs.get(job.kind)
        try:
            if registered is None:
                raise RuntimeError(f"No installed plugin handles job type {job.kind!r}.")
            if registered.plugin not in enabled:
                raise RuntimeError(f"Plugin {registered.plugin!r} is not enabled for tenant {tenant_slug!r}.")
            with _lease_kept(tenant.database, job_id):
                registered.item.handler(tenant_slug, dict(job.payload))
        except Exception as exc:  # noqa: BLE001 - a job's failure is recorded, never lost
            retryable = not isinstance(exc, DeliveryError) or exc.retryable
            retry_after = exc.retry_after if isinstance(exc, DeliveryError) else None
            job.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            job.lease_until = None
            if retryable and registered is not None and job.attempts < job.max_attempts:
                job.status = JobStatus.pending
                job.due_at = utcnow() + backoff(job.attempts, retry_after)
                job.enqueued_at = utcnow()
                job.resend_at = job.due_at + RESEND_AFTER
                log.warning("job %s/%s failed, retrying at %s: %s", tenant_slug, job_id, job.due_at, exc)
            else:
                job.status = JobStatus.failed
                job.finished_at = utcnow()
                job.idempotency_key = _released(job.idempotency_key)
                log.error("job %s/%s failed for good: %s", tenant_slug, job_id, exc)
            session.add(job)
            session.commit()
            if job.status == JobStatus.pending:
                send_job(tenant_slug, job.id, job.due_at, job.kind)
            return job.status
        job.status = JobStatus.done
        job.finished_at = utcnow()
        job.idempotency_key = _released(job.idempotency_key)
        job.lease_until = None
        session.add(job)
        session.commit()
        return job.status
