"""Writing deliveries: the rows first, then the send jobs, in the caller's transaction.

A delivery's ``idempotency_key`` says what it is for (``campaign:7:<profile>``, ``journey:3:<entry>:
<step>:<visit>``): writing the same delivery twice keeps the first, so a re-run launch or a
redelivered journey message never makes a second send. The same key goes to the provider, which
drops a repeated request: a worker that dies after the provider accepted a message but before its
row said so re-sends it harmlessly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from core.db.base import utcnow
from core.db.bulk import chunks, insert_new_rows
from core.delivery.models import Delivery, DeliveryState
from core.queue.outbox import add_job

DELIVERY = Delivery.__table__  # type: ignore[attr-defined]
SEND_DELIVERIES = "core.send_deliveries"
# Deliveries per send job: enough to amortize a job's fixed cost and let a channel send them
# concurrently, few enough that a retried job repeats little.
BATCH = 200


@dataclass(frozen=True)
class NewDelivery:
    """A delivery to write: queued (possibly deferred to ``due_at``) or suppressed with a reason."""

    idempotency_key: str
    message_id: int
    profile_id: str
    channel: str
    address: str | None
    state: DeliveryState = DeliveryState.queued
    reason: str | None = None
    detail: str | None = None
    due_at: datetime | None = None
    campaign_id: int | None = None
    journey_id: int | None = None
    step: str | None = None
    entry_id: int | None = None
    test: bool = False
    event: dict[str, Any] | None = None


def write_deliveries(session: Session, tenant: str, new: Sequence[NewDelivery]) -> list[int]:
    """Insert the deliveries not written before and queue send jobs for the queued ones.

    Returns the ids of the rows inserted now (a key already present is skipped). The jobs go to
    the queue when the caller commits.
    """
    now = utcnow()
    rows = [_row(item, now) for item in new]
    returning = ("id", "state", "due_at")
    inserted = insert_new_rows(
        session.connection(), DELIVERY, rows, unique="idempotency_key", returning=returning
    )
    queue_sends(session, tenant, [(i, due) for i, state, due in inserted if state == DeliveryState.queued])
    return [i for i, _, _ in inserted]


def queue_sends(session: Session, tenant: str, due: Sequence[tuple[int, datetime]]) -> None:
    """Add send jobs for deliveries ``(id, due at)``: a job per batch of deliveries due together."""
    now = utcnow()
    by_moment: defaultdict[datetime, list[int]] = defaultdict(list)
    for delivery_id, due_at in due:
        by_moment[_job_due(due_at, now)].append(delivery_id)
    for moment, ids in sorted(by_moment.items()):
        for batch in chunks(sorted(ids), BATCH):
            add_job(session, tenant, SEND_DELIVERIES, {"ids": list(batch)}, due_at=moment)


def _job_due(due_at: datetime, now: datetime) -> datetime:
    """When the job of a delivery due at ``due_at`` runs: now, or the next whole minute after it.

    Deliveries deferred to about the same moment (the end of quiet hours) share jobs; a job
    never runs before its deliveries are due (the sender skips those that are not).
    """
    if due_at <= now + timedelta(seconds=1):
        return now
    minute = due_at.replace(second=0, microsecond=0)
    return minute if minute == due_at else minute + timedelta(minutes=1)


def _row(item: NewDelivery, now: datetime) -> dict[str, Any]:
    return {
        "idempotency_key": item.idempotency_key, "message_id": item.message_id,
        "profile_id": item.profile_id, "channel": item.channel, "address": item.address,
        "campaign_id": item.campaign_id, "journey_id": item.journey_id, "step": item.step,
        "entry_id": item.entry_id, "test": item.test, "state": item.state, "reason": item.reason,
        "detail": item.detail, "event": item.event, "attempts": 0, "due_at": item.due_at or now,
        "created_at": now, "failed_at": now if item.state == DeliveryState.failed else None,
    }  # fmt: skip
