"""The pass operation table (tenant database): one marketer's guided issue of wallet passes to a segment."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field

from core.db.base import TenantModel, utcnow


class OperationState(enum.StrEnum):
    """An operation is edited (draft), then issuing (launching), then done (launched)."""

    draft = "draft"
    launching = "launching"
    launched = "launched"


class PassOperation(TenantModel, table=True):
    """A pass operation: its dates, the Apple and/or Google template, personalization, audience, distribution.

    ``personalization`` maps a template field key to ``{"source", "format", "fallback"}``;
    ``distribution`` is ``{"channels": [...], "qr": bool, "web": bool}``; ``counts`` holds what the
    launch did: ``targeted``, per wallet ``issued``/``failed``, ``failures`` by reason, ``campaigns``.
    """

    __tablename__ = "pass_operation"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    goal: str = Field(default="", max_length=2000)
    starts_on: date | None = None
    ends_on: date | None = None
    apple_template_id: int | None = None
    google_template_id: int | None = None
    personalization: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    segment_id: int | None = None
    distribution: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    state: OperationState = Field(default=OperationState.draft, max_length=12)
    launched_at: datetime | None = None
    launched_by: str | None = Field(default=None, max_length=320)
    counts: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str = Field(default="", max_length=320)
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: str = Field(default="", max_length=320)

    def template_ids(self) -> dict[str, int]:
        """The chosen templates by wallet channel."""
        chosen = {"wallet_apple": self.apple_template_id, "wallet_google": self.google_template_id}
        return {channel: tid for channel, tid in chosen.items() if tid is not None}
