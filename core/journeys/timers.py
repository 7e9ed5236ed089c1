"""Timers: entries whose wait is over (``state`` waiting, ``due_at`` passed) are advanced.

The state lives only in the tenant database, so timers survive restarts. When an entry starts
waiting, a timer job is queued for the end of its slice of time (:func:`~core.journeys.run.
schedule_timers`); the periodic tick catches up with anything missed. A job finding a large
backlog fans out into shards (entries by ``id`` modulo the number of shards) that workers run in
parallel; each shard takes batches with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (under SQLite's
single write lock otherwise), so two workers never advance the same entry.
"""

from __future__ import annotations

import math
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, select

from core.db.base import utcnow
from core.db.engines import tenant_engine
from core.db.locks import transaction_lock
from core.journeys.engine import resume
from core.journeys.models import EntryState, Journey, JourneyEntry, JourneyStatus
from core.journeys.run import ADVANCE_TIMERS, Run, Runtime
from core.queue.outbox import add_job

ENTRY = JourneyEntry.__table__  # type: ignore[attr-defined]
BATCH = 500  # entries per transaction
FAN_OUT = 2_000  # due entries per shard, when there are more than this
MAX_SHARDS = 16


def write_lock(session: Session) -> None:
    """On SQLite, take the database's write lock now (reads then see what every writer wrote)."""
    if session.get_bind().dialect.name == "sqlite":
        transaction_lock(session, "journeys")


def active_journeys(session: Session) -> dict[int, Journey]:
    """The active journeys by id."""
    found = session.exec(select(Journey).where(Journey.status == JourneyStatus.active))
    return {journey.id: journey for journey in found if journey.id is not None}


def count_due(session: Session, now: datetime | None = None) -> int:
    """How many entries of active journeys are due now."""
    ids = list(active_journeys(session))
    if not ids:
        return 0
    query = sa.select(sa.func.count()).where(
        ENTRY.c.state == EntryState.waiting, ENTRY.c.due_at <= (now or utcnow()), ENTRY.c.journey_id.in_(ids)
    )
    return int(session.connection().execute(query).scalar_one())


def due_batch(run: Run, journey_ids: list[int], shard: int, shards: int) -> list[JourneyEntry]:
    """Up to :data:`BATCH` entries of these journeys due at the run's moment, locked for its
    transaction (PostgreSQL skips those another worker holds)."""
    query = (
        sa.select(ENTRY)
        .where(
            ENTRY.c.state == EntryState.waiting,
            ENTRY.c.due_at <= run.now,
            ENTRY.c.journey_id.in_(journey_ids),
        )
        .order_by(ENTRY.c.due_at)
        .limit(BATCH)
    )
    if shards > 1:
        query = query.where(ENTRY.c.id % shards == shard)
    if run.session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return run.load(query)


def advance_batch(runtime: Runtime, shard: int = 0, shards: int = 1, now: datetime | None = None) -> int:
    """Advance one batch of entries due at ``now`` (default: the current time) in one transaction;
    how many."""
    with Session(tenant_engine(runtime.tenant.database), expire_on_commit=False) as session:
        write_lock(session)
        journeys = active_journeys(session)
        if not journeys:
            return 0
        run = Run(session, runtime, now)
        entries = due_batch(run, list(journeys), shard, shards)
        by_journey: dict[int, list[JourneyEntry]] = {}
        for entry in entries:
            by_journey.setdefault(entry.journey_id, []).append(entry)
        for journey_id, group in by_journey.items():
            resume(run, journeys[journey_id], group)
        run.flush()
        session.commit()
        return len(entries)


def advance_due(runtime: Runtime, shard: int = 0, shards: int = 1, now: datetime | None = None) -> int:
    """Advance every entry of the shard due at ``now`` (default: the current time), a batch per
    transaction; how many."""
    total = 0
    while True:
        done = advance_batch(runtime, shard, shards, now)
        total += done
        if done < BATCH:
            return total


def fan_out(runtime: Runtime) -> int:
    """Queue shard jobs when the backlog is large; how many (0: advance it here)."""
    with Session(tenant_engine(runtime.tenant.database), expire_on_commit=False) as session:
        due = count_due(session)
        if due <= FAN_OUT:
            return 0
        shards = min(MAX_SHARDS, math.ceil(due / FAN_OUT))
        stamp = int(utcnow().timestamp() * 1000)
        for shard in range(shards):
            add_job(session, runtime.tenant.slug, ADVANCE_TIMERS, {"shard": shard, "shards": shards},
                    idempotency_key=f"journey-timers:{stamp}:{shard}/{shards}")  # fmt: skip
        session.commit()
        return shards
