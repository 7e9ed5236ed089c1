"""Tables of the identity graph and of the profiles it resolves to (tenant database)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field

from core.db.base import TenantModel, utcnow

JSON_DOCUMENT = JSON().with_variant(JSONB(), "postgresql")


class Profile(TenantModel, table=True):
    """One person. A merged-away profile keeps its row, pointing at the survivor, so undo can restore it."""

    id: str = Field(primary_key=True, max_length=40)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    merged_into: str | None = Field(default=None, index=True, max_length=40)
    display_name: str = Field(default="", max_length=200, index=True)
    # Binary JSON on PostgreSQL: segments read single traits across every profile, which jsonb
    # answers without re-parsing the whole document each time.
    traits: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON_DOCUMENT, nullable=False))
    trait_times: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSON, nullable=False),
        description="Per trait, the [event time, message id] of the value kept (last write wins).",
    )
    first_seen: datetime | None = None
    last_seen: datetime | None = None


class Identity(TenantModel, table=True):
    """An identifier (type, normalized value) and the profile it resolves to now.

    ``origin_profile_id`` is the profile the identifier was first given; when a merge is undone,
    the cluster anchored on it gets that profile back. ``retired_at``: the provider said this
    address no longer exists (an uninstalled app's push token); it still identifies, but nothing
    is sent to it until an event carries it again.
    """

    __table_args__ = (UniqueConstraint("type", "value"),)

    id: int | None = Field(default=None, primary_key=True)
    type: str = Field(max_length=40)
    value: str = Field(max_length=320)
    profile_id: str = Field(index=True, max_length=40)
    origin_profile_id: str = Field(max_length=40)
    first_seen: datetime = Field(default_factory=utcnow)
    retired_at: datetime | None = None


class EventIdentity(TenantModel, table=True):
    """Which identifiers one event carried: the edges of the identity graph."""

    __tablename__ = "event_identity"
    __table_args__ = (Index("ix_event_identity_identifier", "type", "value"),)

    id: int | None = Field(default=None, primary_key=True)
    event_id: int = Field(index=True)
    type: str = Field(max_length=40)
    value: str = Field(max_length=320)


class MergeRecord(TenantModel, table=True):
    """Two profiles became one: when, why (the event and identifiers), and whether it was undone."""

    __tablename__ = "merge_record"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    survivor_id: str = Field(index=True, max_length=40)
    absorbed_id: str = Field(index=True, max_length=40)
    cause_event_id: int | None = None
    cause: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    undone_at: datetime | None = None
    undone_by: str | None = Field(default=None, max_length=320)


class IdentityBlock(TenantModel, table=True):
    """Two identifiers an admin separated (by undoing a merge): never in one profile again."""

    __tablename__ = "identity_block"

    id: int | None = Field(default=None, primary_key=True)
    a_type: str = Field(max_length=40)
    a_value: str = Field(max_length=320)
    b_type: str = Field(max_length=40)
    b_value: str = Field(max_length=320)
    merge_id: int | None = None
    created_at: datetime = Field(default_factory=utcnow)
