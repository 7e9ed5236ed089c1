"""Accepting events: validate each, store the valid ones in one transaction, queue processing.

:func:`accept` is what every source calls (the HTTP API, CSV imports, ...). It never raises for a
bad event: each one is reported as ``{"index", "reason"}`` and the others are kept. Storing is one
bulk ``INSERT ... ON CONFLICT (message_id) DO NOTHING``, so a resent message (same ``messageId``)
is stored once and counted as a duplicate. When anything new was stored, one
``core.process_events`` job joins the same transaction; the commit happens before
:func:`accept` returns, so an event is durable before the caller answers 200.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from core.db.base import utcnow
from core.ingest.models import Event, EventStatus
from core.ingest.schemas import (
    Alias,
    Group,
    Identify,
    InvalidEvent,
    SegmentEvent,
    Track,
    _WithName,
    parse_event,
)
from core.queue.outbox import add_job

PROCESS_JOB = "core.process_events"
EVENT_TABLE = Event.__table__  # type: ignore[attr-defined]

try:  # orjson is optional: faster parsing and size measuring when installed
    import orjson

    def dumps(value: Any) -> bytes:
        """Compact JSON bytes."""
        return orjson.dumps(value)

except ImportError:  # pragma: no cover - depends on the environment
    import json

    def dumps(value: Any) -> bytes:
        """Compact JSON bytes."""
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


@dataclass
class IngestResult:
    """What became of one request's events."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    job_id: int | None = None

    @property
    def stored(self) -> bool:
        """True when at least one new event was stored."""
        return self.accepted > 0


def to_row(
    event: SegmentEvent,
    *,
    received_at: datetime,
    source: str,
    shared_context: dict[str, Any] | None = None,
    shared_integrations: dict[str, Any] | None = None,
    sent_at: datetime | None = None,
) -> dict[str, Any]:
    """The ``event`` table row of a validated event (columns by name)."""
    context = {**shared_context, **event.context} if shared_context else event.context
    integrations = (
        {**shared_integrations, **event.integrations} if shared_integrations else event.integrations
    )
    row: dict[str, Any] = {
        "message_id": event.message_id or str(uuid.uuid4()),
        "type": event.kind,
        "user_id": event.user_id,
        "anonymous_id": event.anonymous_id,
        "previous_id": None,
        "group_id": None,
        "event": None,
        "name": None,
        "properties": {},
        "traits": {},
        "context": context,
        "integrations": integrations,
        "timestamp": event.timestamp or received_at,
        "sent_at": event.sent_at or sent_at,
        "received_at": received_at,
        "source": source,
        "status": EventStatus.pending,
    }
    if isinstance(event, Track):
        row["event"] = event.event
        row["properties"] = event.properties
    elif isinstance(event, _WithName):
        row["name"] = event.name
        properties = event.properties
        if event.category is not None and "category" not in properties:
            # analytics.js copies the page category into the properties; keep it the same way.
            properties = {**properties, "category": event.category}
        row["properties"] = properties
    elif isinstance(event, Identify):
        row["traits"] = event.traits
    elif isinstance(event, Group):
        row["group_id"] = event.group_id
        row["traits"] = event.traits
    elif isinstance(event, Alias):
        row["previous_id"] = event.previous_id
    return row


def validate(
    items: Sequence[Any],
    default_type: str | None = None,
    source: str = "api",
    *,
    received_at: datetime | None = None,
    shared_context: dict[str, Any] | None = None,
    shared_integrations: dict[str, Any] | None = None,
    sent_at: datetime | None = None,
    max_event_bytes: int | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(rows, rejected)``: the table rows of the valid items and ``{index, reason}`` of the rest.

    ``shared_context`` / ``shared_integrations`` (a batch's top-level values) are merged under each
    event's own; ``sent_at`` applies to events without their own ``sentAt``; with
    ``max_event_bytes``, an item whose compact JSON is larger is refused.
    """
    received_at = received_at or utcnow()
    rows: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            if max_event_bytes is not None and len(dumps(item)) > max_event_bytes:
                raise InvalidEvent(f"the event is larger than {max_event_bytes // 1024} KB")
            event = parse_event(item, default_type)
        except InvalidEvent as exc:
            rejected.append({"index": index, "reason": exc.reason})
            continue
        rows.append(
            to_row(
                event, received_at=received_at, source=source, shared_context=shared_context,
                shared_integrations=shared_integrations, sent_at=sent_at,
            )
        )  # fmt: skip
    return rows, rejected


def store(session: Session, tenant_slug: str, rows: list[dict[str, Any]]) -> IngestResult:
    """Insert rows, skipping known message ids, and add the processing job; the caller commits."""
    result = IngestResult()
    unique: dict[str, dict[str, Any]] = {}
    for row in rows:  # a message id repeated inside one request is a duplicate too
        unique.setdefault(row["message_id"], row)
    result.duplicates = len(rows) - len(unique)
    if not unique:
        return result
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(EVENT_TABLE).on_conflict_do_nothing(index_elements=["message_id"]).returning(EVENT_TABLE.c.id)
    )
    inserted = session.exec(statement, params=list(unique.values())).all()
    result.accepted = len(inserted)
    result.duplicates += len(unique) - result.accepted
    if result.accepted:
        result.job_id = add_job(session, tenant_slug, PROCESS_JOB, {}).id
    return result


def accept(
    session: Session,
    tenant_slug: str,
    items: Sequence[Any],
    default_type: str | None = None,
    source: str = "api",
    **options: Any,
) -> IngestResult:
    """Validate ``items``, store the valid ones and commit; bad items come back as ``rejected``.

    ``session`` is a session on the tenant's database. ``options`` are those of :func:`validate`.
    """
    rows, rejected = validate(items, default_type, source, **options)
    result = store(session, tenant_slug, rows) if rows else IngestResult()
    result.rejected = rejected
    if result.stored:
        session.commit()
    else:
        session.rollback()
    return result
