"""Where a follower of an append-only stream stands, moved only past rows that can no longer appear.

Rows get ids when they are inserted, but become visible when their transaction commits: a row
with a lower id may still appear after a higher one was read. A follower therefore only moves its
cursor past rows written long enough ago (:data:`GRACE`) that no open transaction can still add
a lower id, and re-reads the rows after it, which its handling must make harmless.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Field, Session

from core.db.base import TenantModel

GRACE = timedelta(seconds=15)


class StreamCursor(TenantModel, table=True):
    """How far one follower has read a stream (``last_id``), and a recent mark of its end.

    ``mark_id`` was the stream's end at ``mark_at``: once ``mark_at`` is :data:`GRACE` old,
    every row up to ``mark_id`` is visible.
    """

    __tablename__ = "stream_cursor"

    name: str = Field(primary_key=True, max_length=40)
    last_id: int = 0
    mark_id: int = 0
    mark_at: datetime | None = None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def cursor_named(session: Session, name: str, start: int) -> StreamCursor:
    """The cursor ``name``; a new one starts at ``start`` (a new follower reads what comes next)."""
    cursor = session.get(StreamCursor, name)
    if cursor is None:
        cursor = StreamCursor(name=name, last_id=start)
        session.add(cursor)
    return cursor


def advance(cursor: StreamCursor, now: datetime, end_id: int, reached: int, cap: int | None) -> None:
    """Move the cursor to what is handled (``reached``), never past a row that may still appear.

    ``end_id`` is the stream's highest id now; ``cap`` an id the cursor must not pass (rows
    after it are not ready to be read).
    """
    safe = cursor.last_id
    if cursor.mark_at is not None and _aware(cursor.mark_at) <= now - GRACE:
        safe = max(safe, cursor.mark_id)  # every row up to the mark was written GRACE ago or more
    if cursor.mark_at is None or _aware(cursor.mark_at) <= now - GRACE:
        cursor.mark_id, cursor.mark_at = end_id, now
    limits = [safe, reached] + ([cap] if cap is not None else [])
    cursor.last_id = max(cursor.last_id, min(limits))
