"""Tables of the delivery pipeline (tenant database): messages, deliveries, link clicks, the policy.

A :class:`Delivery` is written before any queue message, one per recipient per send (a campaign,
a journey step, a test send). Its lifecycle timestamps (``sent_at``, ``delivered_at``...) are what
every report counts: there are no separate counters to drift.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field

from core.db.base import TenantModel, utcnow


class Message(TenantModel, table=True):
    """What a send says, frozen when deliveries start pointing at it.

    ``content`` is a :class:`core.messages.personalization.MessageTemplate` whose fields are those
    of the channel's ``Template``; ``marketing`` messages need consent and obey caps and quiet hours.
    """

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=100)
    content: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    marketing: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class DeliveryState(enum.StrEnum):
    """Where a delivery stands: waiting to go (maybe deferred), never to go, gone, or given up."""

    queued = "queued"
    suppressed = "suppressed"
    sent = "sent"
    failed = "failed"


class Delivery(TenantModel, table=True):
    """One message to one profile on one channel, from a campaign, a journey step or a test send."""

    __table_args__ = (
        Index("ix_delivery_campaign", "campaign_id", "state"),
        Index("ix_delivery_journey_step", "journey_id", "step"),
        Index("ix_delivery_profile_sent", "profile_id", "sent_at"),
        Index("ix_delivery_provider", "channel", "provider_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=200, unique=True, description="Also sent to the provider.")
    message_id: int
    profile_id: str = Field(max_length=40)
    channel: str = Field(max_length=100)
    address: str | None = Field(default=None, max_length=320)
    campaign_id: int | None = None
    journey_id: int | None = None
    step: str | None = Field(default=None, max_length=100)
    entry_id: int | None = None
    test: bool = Field(default=False, description="A test send: never in a report.")
    state: DeliveryState = Field(default=DeliveryState.queued, max_length=12)
    reason: str | None = Field(
        default=None, max_length=100, description="Suppression or failure reason code."
    )
    detail: str | None = Field(default=None, max_length=1000)
    language: str | None = Field(default=None, max_length=20)
    event: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True), description="The event that triggered it."
    )
    links: list[str] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True), description="Tracked link targets, by index."
    )
    attempts: int = 0
    due_at: datetime = Field(default_factory=utcnow)
    provider_id: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    opened_at: datetime | None = None
    clicked_at: datetime | None = None
    installed_at: datetime | None = None
    removed_at: datetime | None = None
    converted_at: datetime | None = None
    failed_at: datetime | None = None


class LinkClick(TenantModel, table=True):
    """One click on a tracked link of one delivery."""

    __tablename__ = "link_click"

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(index=True)
    profile_id: str = Field(max_length=40, index=True)
    link: int
    url: str = Field(max_length=2000)
    at: datetime = Field(default_factory=utcnow)


class SendingPolicy(TenantModel, table=True):
    """The tenant's sending policy (one row): caps, quiet hours, rate limits."""

    __tablename__ = "sending_policy"

    id: int = Field(default=1, primary_key=True)
    policy: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: str = Field(default="", max_length=320)
