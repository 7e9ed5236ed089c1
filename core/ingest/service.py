"""Accepting events: validate each, store the valid ones in one transaction, queue processing.

:func:`accept` is what every source calls (the HTTP API, CSV imports, ...). It never raises for a
bad event: each one is reported as ``{"index", "reason"}`` and the others are kept. Storing is one
bulk ``INSERT ... ON CONFLICT (message_id) DO NOTHING``, so a resent message (same ``messageId``)
is stored once and counted as a duplicate. When anything new was stored, the same transaction
makes sure a ``core.process_events`` job is queued (one for all the requests that arrive while
it waits or runs); the commit happens before :func:`accept` returns, so an event is durable
before the caller answers 200.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import TextClause, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from core.db.base import utcnow
from core.ingest.models import SOURCE_LENGTH, Event, EventStatus
from core.ingest.schemas import (
    Alias,
    Group,
    Identify,
    InvalidEvent,
    NamedView,
    SegmentEvent,
    Track,
    parse_event,
)
from core.queue.outbox import ensure_job

PROCESS_JOB = "core.process_events"
EVENT_TABLE = Event.__table__  # type: ignore[attr-defined]


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON (datetimes as ISO-8601); refuses unpaired surrogates and huge integers."""
    return orjson.dumps(value)


# A NUL character, as JSON writes it: an even number of backslashes (none, or escaped ones) before.
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


@dataclass
class IngestResult:
    """What became of one request's events."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    job_id: int | None = None  # the processing job this request added (None: one was already queued)

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
    elif isinstance(event, NamedView):
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


@dataclass
class Prepared:
    """Validated events ready to store: rows (columns by name), each row's JSON, the refused items."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    encoded: list[bytes] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)


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
) -> Prepared:
    """Validate ``items``: the rows of the valid ones, ``{index, reason}`` of the rest.

    ``shared_context`` / ``shared_integrations`` (a batch's top-level values) are merged under each
    event's own; ``sent_at`` applies to events without their own ``sentAt``; with
    ``max_event_bytes``, an item whose compact JSON is larger is refused (fields that are dropped
    anyway do not count: only an event whose stored row is that large is measured as sent).
    Events holding what the databases cannot store (NUL characters, unpaired surrogates) are
    refused too.
    """
    if len(source) > SOURCE_LENGTH:
        raise ValueError(f"source {source!r} is longer than {SOURCE_LENGTH} characters")
    received_at = received_at or utcnow()
    prepared = Prepared()
    for index, item in enumerate(items):
        try:
            event = parse_event(item, default_type)
            row = to_row(
                event, received_at=received_at, source=source, shared_context=shared_context,
                shared_integrations=shared_integrations, sent_at=sent_at,
            )  # fmt: skip
            encoded = _encode(row)
            # The stored row is about the event's size; only a large one is measured as sent.
            if (
                max_event_bytes is not None
                and len(encoded) > max_event_bytes
                and _size(item) > max_event_bytes
            ):
                raise InvalidEvent(f"the event is larger than {max_event_bytes // 1024} KB")
        except InvalidEvent as exc:
            prepared.rejected.append({"index": index, "reason": exc.reason})
            continue
        prepared.rows.append(row)
        prepared.encoded.append(encoded)
    return prepared


def _json(value: Any) -> bytes:
    try:
        return dumps(value)
    except orjson.JSONEncodeError as exc:  # unpaired surrogates; with orjson also integers beyond 64 bits
        raise InvalidEvent(f"the event cannot be stored as JSON: {exc}") from None


def _size(item: Any) -> int:
    return len(_json(item))


def _encode(row: dict[str, Any]) -> bytes:
    encoded = _json(row)
    if b"\\u0000" in encoded and _NUL.search(encoded):
        raise InvalidEvent("the event holds a NUL character (\\u0000), which cannot be stored")
    return encoded


def _postgres_insert() -> TextClause:
    # One parameter, a JSON array of rows, expanded by the server: far less client work per row
    # than a multi-row VALUES list (psycopg re-parses long statements on every call).
    dialect = postgresql.dialect()
    columns = [column for column in EVENT_TABLE.columns if not column.primary_key]
    names = ", ".join(f'"{column.name}"' for column in columns)
    record = ", ".join(f'"{column.name}" {column.type.compile(dialect=dialect)}' for column in columns)
    return text(
        f"INSERT INTO event ({names}) SELECT {names} FROM json_to_recordset(CAST(:rows AS json)) AS x({record}) "
        "ON CONFLICT (message_id) DO NOTHING RETURNING message_id"
    )


_POSTGRES_INSERT = _postgres_insert()


def store(session: Session, tenant_slug: str, prepared: Prepared) -> IngestResult:
    """Insert the rows, skipping known message ids, and add the processing job; the caller commits."""
    return store_all(session, tenant_slug, [prepared])[0]


def store_all(session: Session, tenant_slug: str, requests: Sequence[Prepared]) -> list[IngestResult]:
    """:func:`store` for several requests in one statement; a result per request, in order.

    A message id met twice (in one request or in two) is stored for the first request that has
    it and counts as a duplicate for the other.
    """
    results = [IngestResult(rejected=prepared.rejected) for prepared in requests]
    owner: dict[str, int] = {}
    kept: list[tuple[int, int]] = []
    for index, prepared in enumerate(requests):
        for position, row in enumerate(prepared.rows):
            if row["message_id"] in owner:
                results[index].duplicates += 1
                continue
            owner[row["message_id"]] = index
            kept.append((index, position))
    if not kept:
        return results
    connection = session.connection()  # the session's transaction; core statements, no ORM objects
    if connection.dialect.name == "postgresql":
        rows = b"[" + b",".join(requests[index].encoded[position] for index, position in kept) + b"]"
        inserted = connection.execute(_POSTGRES_INSERT, {"rows": rows.decode()}).scalars().all()
    else:
        statement = (
            sqlite.insert(EVENT_TABLE)
            .on_conflict_do_nothing(index_elements=["message_id"])
            .returning(EVENT_TABLE.c.message_id)
        )
        inserted = (
            connection.execute(statement, [requests[index].rows[position] for index, position in kept])
            .scalars()
            .all()
        )
    new = set(inserted)
    for message_id, index in owner.items():
        if message_id in new:
            results[index].accepted += 1
        else:
            results[index].duplicates += 1
    if new:
        job_id = ensure_job(session, tenant_slug, PROCESS_JOB)
        for result in results:
            result.job_id = job_id if result.accepted else None
    return results


def accept(
    session: Session,
    tenant_slug: str,
    items: Sequence[Any],
    default_type: str | None = None,
    source: str = "api",
    **options: Any,
) -> IngestResult:
    """Validate ``items``, store the valid ones and commit; bad items come back as ``rejected``.

    ``session`` is a session on the tenant's database (PostgreSQL or SQLite). ``options`` are
    those of :func:`validate`.
    """
    prepared = validate(items, default_type, source, **options)
    result = (
        store(session, tenant_slug, prepared) if prepared.rows else IngestResult(rejected=prepared.rejected)
    )
    if result.stored:
        session.commit()
    else:
        session.rollback()
    return result
