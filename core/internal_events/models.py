"""The ``internal_event`` table: an append-only stream of what Tessera observed about profiles.

Customers' own events live in ``event``; these are Tessera's (``Segment Entered``, ``Segment
Exited``, ...). Readers such as journeys follow the stream by ``id``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field

from core.db.base import TenantModel, utcnow


class InternalEvent(TenantModel, table=True):
    """One internal event about one profile."""

    __tablename__ = "internal_event"
    __table_args__ = (Index("ix_internal_event_profile_occurred", "profile_id", "occurred_at"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, index=True)
    profile_id: str = Field(max_length=40)
    properties: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    occurred_at: datetime = Field(default_factory=utcnow)
