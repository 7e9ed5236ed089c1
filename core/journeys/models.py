"""Tables of journeys (tenant database): the journeys, each profile's pass through one, its path,
and the messages of send steps."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field

from core.db.base import TenantModel, utcnow


class JourneyStatus(enum.StrEnum):
    """A journey's life: edited, running, held (entries wait, nobody enters), retired."""

    draft = "draft"
    active = "active"
    paused = "paused"
    archived = "archived"


class Journey(TenantModel, table=True):
    """A flow marketers build: a trigger, steps, a goal, a re-entry policy (``definition``).

    ``version`` grows with each change of the definition. ``event_position`` and
    ``internal_position`` are the ids the event and internal-event streams had reached when the
    journey was (re-)activated: triggers only react to what came after.
    """

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    description: str = Field(default="", max_length=2000)
    definition: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: JourneyStatus = Field(default=JourneyStatus.draft, max_length=10)
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str = Field(default="", max_length=320)
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: str = Field(default="", max_length=320)
    activated_at: datetime | None = None
    event_position: int = 0
    internal_position: int = 0


class EntryState(enum.StrEnum):
    """Where one pass stands. ``active`` only while being advanced; the last four have ended."""

    active = "active"
    waiting = "waiting"
    completed = "completed"
    exited = "exited"
    converted = "converted"
    holdout = "holdout"


OPEN_STATES = (EntryState.active, EntryState.waiting)


class JourneyEntry(TenantModel, table=True):
    """One profile's pass through a journey.

    ``open_key`` (``<journey>:<profile>``) is set while the pass is open in a journey that allows
    one open pass per profile: its unique index stops two concurrent triggers from opening two.
    ``trigger_key`` names what started the pass (``event:<id>``, ``date:<day>``...): unique per
    journey and profile, so handling the same trigger twice enters once. ``first_event_id`` and
    ``wait_event_id`` are event ids: only events after them count for the goal and for the
    current ``wait_for_event``. ``version`` grows with each change (optimistic updates).
    """

    __tablename__ = "journey_entry"
    __table_args__ = (
        UniqueConstraint("journey_id", "profile_id", "trigger_key", name="uq_journey_entry_trigger"),
        Index("ix_journey_entry_due", "state", "due_at"),
        Index("ix_journey_entry_profile", "profile_id", "journey_id"),
        Index("ix_journey_entry_journey_step", "journey_id", "step"),
    )

    id: int | None = Field(default=None, primary_key=True)
    journey_id: int
    profile_id: str = Field(max_length=40)
    step: str | None = Field(default=None, max_length=100)
    state: EntryState = Field(default=EntryState.active, max_length=10)
    due_at: datetime | None = None
    waiting_event: str | None = Field(default=None, max_length=500)
    visits: int = 0
    entered_at: datetime = Field(default_factory=utcnow)
    step_at: datetime = Field(default_factory=utcnow, description="When it reached its current step.")
    ended_at: datetime | None = None
    converted_at: datetime | None = None
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    trigger_key: str | None = Field(default=None, max_length=200)
    open_key: str | None = Field(default=None, max_length=100, unique=True)
    first_event_id: int = 0
    wait_event_id: int = 0
    version: int = 1


class JourneyVisit(TenantModel, table=True):
    """One step one pass went through, and what came of it (``sent``, ``waited``, ``yes``...)."""

    __tablename__ = "journey_visit"
    __table_args__ = (
        Index("ix_journey_visit_journey_step", "journey_id", "step"),
        Index("ix_journey_visit_profile", "profile_id", "at"),
        Index("ix_journey_visit_entry", "entry_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    entry_id: int
    journey_id: int
    profile_id: str = Field(max_length=40)
    step: str = Field(max_length=100)
    at: datetime = Field(default_factory=utcnow)
    outcome: str = Field(default="", max_length=120)


class JourneyMessage(TenantModel, table=True):
    """The frozen message of one send step of one version of a journey (made once, then reused)."""

    __tablename__ = "journey_message"
    __table_args__ = (UniqueConstraint("journey_id", "version", "step", name="uq_journey_message_step"),)

    id: int | None = Field(default=None, primary_key=True)
    journey_id: int
    version: int
    step: str = Field(max_length=100)
    message_id: int
