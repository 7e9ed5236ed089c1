"""Consent tables (tenant database): the current state, and every change ever recorded."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field

from core.db.base import TenantModel, utcnow


class Consent(TenantModel, table=True):
    """Whether a profile agrees to be reached on a channel for a purpose, as of ``at``."""

    __table_args__ = (UniqueConstraint("profile_id", "channel", "purpose"),)

    id: int | None = Field(default=None, primary_key=True)
    profile_id: str = Field(index=True, max_length=40)
    channel: str = Field(max_length=100)
    purpose: str = Field(default="marketing", max_length=100)
    granted: bool
    source: str = Field(max_length=100, description="api, ui:<user>, identify, csv, ...")
    at: datetime = Field(description="When the person gave or withdrew it (event time).")


class ConsentChange(TenantModel, table=True):
    """One recorded consent statement; the current state is the latest by ``at`` per key."""

    __tablename__ = "consent_change"

    id: int | None = Field(default=None, primary_key=True)
    profile_id: str = Field(index=True, max_length=40)
    channel: str = Field(max_length=100)
    purpose: str = Field(default="marketing", max_length=100)
    granted: bool
    source: str = Field(max_length=100)
    at: datetime
    event_id: int | None = Field(default=None, index=True, description="The event that carried it, if any.")
    recorded_at: datetime = Field(default_factory=utcnow)
