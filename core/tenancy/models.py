"""Tables of the control database that describe who may do what in which tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field

from core.db.base import ControlModel, utcnow


class Tenant(ControlModel, table=True):
    """A brand or company using Tessera; its data lives in its own database."""

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(index=True, unique=True, max_length=40)
    name: str = Field(max_length=200)
    database: str = Field(max_length=120, description="PostgreSQL database name or SQLite file name.")
    timezone: str = Field(default="UTC", max_length=64)
    default_region: str = Field(
        default="US",
        max_length=2,
        description="Region (ISO 3166) for phone numbers given without a country code.",
    )
    created_at: datetime = Field(default_factory=utcnow)


class User(ControlModel, table=True):
    """A person who signs in to the UI or owns API tokens."""

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(index=True, unique=True, max_length=320)
    password_hash: str
    name: str = Field(default="", max_length=200)
    disabled: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class Membership(ControlModel, table=True):
    """A user's role in one tenant, optionally narrowed by scope (e.g. countries, brands)."""

    __table_args__ = (UniqueConstraint("user_id", "tenant_id"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    role: str = Field(max_length=20)
    scope: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class ApiToken(ControlModel, table=True):
    """A bearer token for the JSON API, acting as its user with that user's role in one tenant."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=16, description="First characters, to recognise a token in lists.")
    token_digest: str = Field(unique=True, index=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class WriteKey(ControlModel, table=True):
    """The key ingestion SDKs send as HTTP Basic user name; public by nature, yet revocable."""

    __tablename__ = "write_key"

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    name: str = Field(default="default", max_length=100)
    key_digest: str = Field(unique=True, index=True, max_length=64)
    key_sealed: str = Field(description="The key itself, encrypted, so admins can see it again.")
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class PluginSetting(ControlModel, table=True):
    """Whether a tenant enabled a plugin, in sandbox (test) mode or live, and its config."""

    __tablename__ = "plugin_setting"

    __table_args__ = (UniqueConstraint("tenant_id", "plugin"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    plugin: str = Field(max_length=100)
    enabled: bool = False
    sandbox: bool = True
    config: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSON, nullable=False),
        description="Per channel key, the config with secret fields sealed.",
    )
    updated_at: datetime = Field(default_factory=utcnow)
