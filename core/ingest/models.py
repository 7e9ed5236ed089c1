"""The ``event`` table: every accepted event, stored as received before any processing."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, text
from sqlmodel import Field

from core.db.base import TenantModel, utcnow

# Column sizes; the schemas refuse longer values with a reason instead of letting the INSERT fail.
MESSAGE_ID_LENGTH = 200
IDENTIFIER_LENGTH = 255
NAME_LENGTH = 500
SOURCE_LENGTH = 40


class EventType(enum.StrEnum):
    """The Segment call an event came from."""

    identify = "identify"
    track = "track"
    page = "page"
    screen = "screen"
    group = "group"
    alias = "alias"


class EventStatus(enum.StrEnum):
    """Where an event stands: stored (pending), folded into a profile (processed), or failed."""

    pending = "pending"
    processed = "processed"
    failed = "failed"


class Event(TenantModel, table=True):
    """One accepted event. ``message_id`` is unique: a resent message is stored once.

    Few indexes on purpose: every one costs each insert, and each processing update (which sets
    ``status`` and ``profile_id``) too. Pending events are found through a partial index that
    holds only them; timelines through (profile, time); segments through (name, time).
    """

    __tablename__ = "event"
    __table_args__ = (
        Index("ix_event_pending", "id", postgresql_where=text("status = 'pending'"),
              sqlite_where=text("status = 'pending'")),
        Index("ix_event_profile_timestamp", "profile_id", "timestamp"),
        # Segments count events by name in a time window; PostgreSQL answers from the index alone.
        Index("ix_event_name_timestamp", "event", "timestamp", postgresql_include=["profile_id"]),
    )  # fmt: skip

    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(unique=True, max_length=MESSAGE_ID_LENGTH)
    type: EventType = Field(max_length=10)
    user_id: str | None = Field(default=None, max_length=IDENTIFIER_LENGTH)
    anonymous_id: str | None = Field(default=None, max_length=IDENTIFIER_LENGTH)
    previous_id: str | None = Field(default=None, max_length=IDENTIFIER_LENGTH, description="alias only")
    group_id: str | None = Field(default=None, max_length=IDENTIFIER_LENGTH, description="group only")
    event: str | None = Field(default=None, max_length=NAME_LENGTH, description="track: the event name")
    name: str | None = Field(default=None, max_length=NAME_LENGTH, description="page/screen name")
    properties: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    traits: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    context: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    integrations: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    timestamp: datetime = Field(description="When it happened (else when it was received).")
    sent_at: datetime | None = Field(default=None, description="When the client sent it, if it said.")
    received_at: datetime = Field(default_factory=utcnow)
    source: str = Field(default="api", max_length=SOURCE_LENGTH, description='"api", "csv", ...')
    status: EventStatus = Field(default=EventStatus.pending, max_length=10)
    profile_id: str | None = Field(default=None, max_length=64, description="Set by processing.")
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
