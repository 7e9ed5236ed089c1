"""The campaign table (tenant database)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field

from core.db.base import TenantModel, utcnow


class CampaignStatus(enum.StrEnum):
    """A campaign's life: edited, waiting for its time, writing its deliveries, sending, done."""

    draft = "draft"
    scheduled = "scheduled"
    launching = "launching"
    sending = "sending"
    completed = "completed"
    cancelled = "cancelled"


class Campaign(TenantModel, table=True):
    """A one-shot send of ``content`` on ``channel`` to the members of a segment.

    ``content`` is a :class:`~core.messages.personalization.MessageTemplate` (as a dict);
    ``message_id`` is the frozen copy the deliveries point at, made at launch.
    """

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    segment_id: int
    channel: str = Field(max_length=100)
    content: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    marketing: bool = True
    goal_event: str | None = Field(default=None, max_length=200)
    goal_days: int = 7
    status: CampaignStatus = Field(default=CampaignStatus.draft, max_length=12)
    scheduled_at: datetime | None = None
    launched_at: datetime | None = None
    completed_at: datetime | None = None
    launched_by: str | None = Field(default=None, max_length=320)
    message_id: int | None = None
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str = Field(default="", max_length=320)
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: str = Field(default="", max_length=320)
