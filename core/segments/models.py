"""Tables of segments (tenant database): the rules, who is in them since when, and their sizes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint, text
from sqlmodel import Field

from core.db.base import TenantModel, utcnow


class Segment(TenantModel, table=True):
    """A named audience defined by a rule (see :mod:`core.segments.rules`).

    ``size`` and ``counted_at`` are those of the last batch evaluation. An archived segment keeps
    its history but is no longer evaluated nor offered.
    """

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    description: str = Field(default="", max_length=2000)
    rule: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str = Field(default="", max_length=320)
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: str = Field(default="", max_length=320)
    size: int | None = None
    counted_at: datetime | None = None
    archived_at: datetime | None = None


class SegmentMembership(TenantModel, table=True):
    """One stay of a profile in a segment: from ``entered_at`` until ``exited_at`` (open: a member now)."""

    __tablename__ = "segment_membership"
    __table_args__ = (
        Index("ix_segment_membership_current", "segment_id", "profile_id", unique=True,
              postgresql_where=text("exited_at IS NULL"), sqlite_where=text("exited_at IS NULL")),
        Index("ix_segment_membership_profile", "profile_id", "segment_id"),
    )  # fmt: skip

    id: int | None = Field(default=None, primary_key=True)
    segment_id: int
    profile_id: str = Field(max_length=40)
    entered_at: datetime = Field(default_factory=utcnow)
    exited_at: datetime | None = None


class SegmentSize(TenantModel, table=True):
    """A segment's size on one day (the last batch evaluation of that day, in UTC)."""

    __tablename__ = "segment_size"
    __table_args__ = (UniqueConstraint("segment_id", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    segment_id: int
    day: date
    size: int
    at: datetime = Field(default_factory=utcnow)
