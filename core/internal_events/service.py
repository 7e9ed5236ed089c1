"""Emitting internal events and reading them: by profile (timelines) and as a stream (journeys)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, col, select

from core.db.bulk import insert_rows
from core.internal_events.models import InternalEvent

INTERNAL_EVENT = InternalEvent.__table__  # type: ignore[attr-defined]
SEGMENT_ENTERED = "Segment Entered"
SEGMENT_EXITED = "Segment Exited"


def emit_many(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Append events given as dicts of ``name``, ``profile_id``, ``properties``, ``occurred_at``."""
    insert_rows(session.connection(), INTERNAL_EVENT, rows)


def since(
    session: Session, after_id: int, limit: int = 1000, names: Sequence[str] = ()
) -> list[InternalEvent]:
    """The events after ``after_id`` in order (optionally only these ``names``): a stream to follow."""
    query = select(InternalEvent).where(col(InternalEvent.id) > after_id)
    if names:
        query = query.where(col(InternalEvent.name).in_(list(names)))
    return list(session.exec(query.order_by(col(InternalEvent.id)).limit(limit)))


def of_profile(session: Session, profile_id: str, limit: int = 100) -> list[InternalEvent]:
    """A profile's internal events, newest first."""
    query = select(InternalEvent).where(InternalEvent.profile_id == profile_id)
    return list(session.exec(query.order_by(col(InternalEvent.occurred_at).desc()).limit(limit)))
