"""Writing durable work: a :class:`Job` row first, the queue message only after the commit.

Callers add jobs inside their own transaction with :func:`add_job`; the messages are sent when
that session's outermost transaction commits (a savepoint's release is not enough: the rows are
not visible to workers yet), and nothing is sent for a rolled-back transaction. A lost message is harmless:
the sweeper re-sends whatever is due and has not run.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, col, select

from core.db.base import utcnow
from core.db.engines import tenant_engine
from core.db.locks import transaction_lock
from core.queue.models import Job, JobStatus

_PENDING_KEY = "tessera_jobs_to_send"
# A job not taken this long after it was due (or its message was sent again) may have lost its
# message: the sweeper sends another. The wait between two such sends grows with the time the job
# has waited, up to the cap: a long queue in front of it (a paced campaign) is not a loss.
RESEND_AFTER = timedelta(seconds=30)
MAX_RESEND_INTERVAL = timedelta(minutes=15)
COALESCE_PREFIX = "coalesce:"
JOB_TABLE = Job.__table__  # type: ignore[attr-defined]


def add_job(
    session: Session,
    tenant: str,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    due_at: datetime | None = None,
    idempotency_key: str | None = None,
    max_attempts: int = 8,
) -> Job:
    """Add a job to the tenant session; its message goes out when the session commits.

    With an ``idempotency_key`` that already exists, the existing job is returned instead.
    """
    if idempotency_key:
        existing = session.exec(select(Job).where(Job.idempotency_key == idempotency_key)).first()
        if existing is not None:
            return existing
    now = utcnow()
    job = Job(
        kind=kind,
        payload=payload or {},
        due_at=due_at or now,
        idempotency_key=idempotency_key,
        max_attempts=max_attempts,
        enqueued_at=now,
        resend_at=max(due_at or now, now) + RESEND_AFTER,
    )
    try:
        with session.begin_nested():
            session.add(job)
    except IntegrityError:
        # A concurrent writer stored the same key first: that job is the one.
        return session.exec(select(Job).where(Job.idempotency_key == idempotency_key)).one()
    _send_on_commit(session, tenant, job)
    return job


def ensure_job(
    session: Session, tenant: str, kind: str, payload: dict[str, Any] | None = None, name: str | None = None
) -> int | None:
    """See that one job of ``kind`` runs after this transaction: many writers, one queued job.

    Adds the job unless one is already queued or running, which will see this transaction's
    writes (see :func:`release_coalesced`); returns the new job's id, or None. Jobs of one kind
    that coalesce apart (one per partition, say) each take a ``name`` and their own ``payload``.
    """
    key = COALESCE_PREFIX + (name or kind)
    transaction_lock(session, key, shared=True)
    now = utcnow()
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(JOB_TABLE)
        .values(kind=kind, payload=payload or {}, status=JobStatus.pending, idempotency_key=key, due_at=now,
                attempts=0, max_attempts=8, enqueued_at=now, resend_at=now + RESEND_AFTER, created_at=now)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(JOB_TABLE.c.id)
    )  # fmt: skip
    job_id = session.connection().execute(statement).scalar()
    if job_id is not None:
        _send_on_commit(session, tenant, Job(id=job_id, kind=kind, due_at=now))
    return job_id


def release_coalesced(session: Session, kind: str, has_work: Callable[[], bool]) -> bool:
    """End a job added by :func:`ensure_job` unless ``has_work()``; returns what it answered.

    ``kind`` is the job's kind, or the ``name`` it was ensured with.

    ``has_work`` is asked under an exclusive lock that waits for every writer that found the job
    queued to commit, so nothing they wrote is missed; with no work left, the job's key is freed
    and the next writer adds a new job. The caller commits.
    """
    key = COALESCE_PREFIX + kind
    transaction_lock(session, key)
    if has_work():
        return True
    session.connection().execute(
        update(JOB_TABLE).where(col(Job.idempotency_key) == key).values(idempotency_key=None)
    )
    return False


def _send_on_commit(session: Session, tenant: str, job: Job) -> None:
    session.info.setdefault(_PENDING_KEY, []).append((tenant, job))
    if not event.contains(session, "after_commit", _send_after_commit):
        event.listen(session, "after_commit", _send_after_commit)
        event.listen(session, "after_transaction_end", _forget_at_the_end)


def _send_after_commit(session: Session) -> None:
    # A savepoint's release (add_job's own, for one) fires after_commit too, but its rows are only
    # visible to a worker once the outermost transaction commits: sent earlier, a message could
    # find no job, and the job would wait for the sweeper.
    if session.in_nested_transaction():
        return
    from core.queue.actors import send_job  # late: actors need the broker set up first

    for tenant, job in session.info.pop(_PENDING_KEY, []):
        send_job(tenant, job.id, job.due_at, job.kind)


def _forget_at_the_end(session: Session, transaction: SessionTransaction) -> None:
    # The outermost transaction ended: committed (its jobs were sent above) or rolled back (they
    # never existed). A savepoint rolled back forgets nothing: the jobs before it still commit.
    if transaction.parent is None:
        session.info.pop(_PENDING_KEY, None)


def next_resend(due_at: datetime, now: datetime) -> datetime:
    """When the sweeper next sends the message of a job due at ``due_at`` again, if it still has
    not run: after as long again as it has waited since it was due (at least :data:`RESEND_AFTER`,
    at most :data:`MAX_RESEND_INTERVAL`), so a job waiting behind a long queue is sent again a
    few times, not every half minute."""
    return now + max(RESEND_AFTER, min(now - due_at, MAX_RESEND_INTERVAL))


def backoff(attempt: int, retry_after: float | None = None) -> timedelta:
    """Delay before the next attempt: exponential from 2 s, capped at 1 h, at least Retry-After."""
    delay = min(2.0**attempt, 3600.0)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return timedelta(seconds=delay)


def job_counts(database: str) -> dict[str, int]:
    """How many of the tenant's jobs are in each status."""
    with Session(tenant_engine(database)) as session:
        counts = dict(session.exec(select(Job.status, func.count()).group_by(Job.status)).all())
    return {status.value: counts.get(status, 0) for status in JobStatus}
