"""Tables of wallet passes (tenant database): templates, images, stores, issued passes, devices.

A :class:`PassTemplate` is what marketers design (its ``design`` is a
:class:`core.passes.design.PassDesign`). A :class:`WalletPass` is one profile's pass of one
template on one wallet; its ``content_hash`` is the hash of what it last showed, so a change of a
bound value (points, tier) is noticed and the pass re-issued. Devices that installed it are
:class:`PassRegistration` rows; :class:`PassActivity` keeps every click, download, install,
removal, update and push, which the reports count.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field

from core.db.base import TenantModel, utcnow


class PassTemplate(TenantModel, table=True):
    """A pass design: style, fields bound to profile data, images, places, languages.

    It is issued in its wallet (``channel``) and in each of ``other_channels``: one design serves
    Apple and Google Wallet alike, with per-wallet settings in the design where they differ.
    """

    __tablename__ = "pass_template"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=60, unique=True, description="Names the template in message texts.")
    name: str = Field(max_length=200)
    channel: str = Field(max_length=100)
    other_channels: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )
    design: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    archived: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: str = Field(default="", max_length=320)

    def wallets(self) -> list[str]:
        """Every wallet channel this template is issued in, its own first."""
        return [self.channel, *(c for c in self.other_channels if c != self.channel)]


class PassImage(TenantModel, table=True):
    """An image uploaded once and kept at @1x, @2x and @3x (PNG), ready for any pass."""

    __tablename__ = "pass_image"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20)
    filename: str = Field(default="", max_length=200)
    width: int
    height: int
    png_1x: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    png_2x: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    png_3x: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Store(TenantModel, table=True):
    """One of the tenant's shops: passes can show on the lock screen near it."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    address: str = Field(default="", max_length=500)
    latitude: float
    longitude: float
    relevant_text: str = Field(default="", max_length=200, description="Shown on the lock screen nearby.")
    created_at: datetime = Field(default_factory=utcnow)


class PassState(enum.StrEnum):
    """A pass is live, voided (revoked: it stays in the wallet, marked void) or expired."""

    active = "active"
    voided = "voided"
    expired = "expired"


class WalletPass(TenantModel, table=True):
    """One profile's pass of one template in one wallet: its serial, token, state and what it last showed."""

    __tablename__ = "wallet_pass"
    __table_args__ = (
        UniqueConstraint(
            "template_id", "profile_id", "channel", name="uq_wallet_pass_template_profile_channel"
        ),
        Index("ix_wallet_pass_updated", "channel", "updated_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    serial: str = Field(max_length=64, unique=True)
    channel: str = Field(max_length=100)
    template_id: int = Field(index=True)
    profile_id: str = Field(max_length=40, index=True)
    authentication_token: str = Field(max_length=64)
    state: PassState = Field(default=PassState.active, max_length=10)
    content_hash: str = Field(default="", max_length=64)
    shown: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False), description="Field values last shown."
    )
    notice: str | None = Field(default=None, max_length=500, description="The latest message put on it.")
    delivery_id: int | None = Field(default=None, description="The delivery that issued it, if any.")
    issued_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow, description="Last-Modified of the pass.")
    voided_at: datetime | None = None


class PassRegistration(TenantModel, table=True):
    """A device that installed a pass and receives update pushes for it."""

    __tablename__ = "pass_registration"
    __table_args__ = (UniqueConstraint("device_id", "serial", name="uq_pass_registration_device_serial"),)

    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(max_length=200, index=True)
    serial: str = Field(max_length=64, index=True)
    push_token: str = Field(max_length=400)
    registered_at: datetime = Field(default_factory=utcnow)


class PassActivityKind(enum.StrEnum):
    """What happened to a pass."""

    issued = "issued"
    clicked = "clicked"
    downloaded = "downloaded"
    installed = "installed"
    removed = "removed"
    updated = "updated"
    pushed = "pushed"
    notified = "notified"
    voided = "voided"
    expired = "expired"
    failed = "failed"


class PassActivity(TenantModel, table=True):
    """One moment in a pass's life, counted by reports (clicks, downloads, installs, pushes...)."""

    __tablename__ = "pass_activity"
    __table_args__ = (Index("ix_pass_activity_kind_at", "kind", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    serial: str = Field(max_length=64, index=True)
    template_id: int
    profile_id: str = Field(max_length=40)
    channel: str = Field(max_length=100)
    kind: PassActivityKind = Field(max_length=12)
    at: datetime = Field(default_factory=utcnow)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class DeviceLog(TenantModel, table=True):
    """A message a device sent to the PassKit log endpoint (why it could not use a pass)."""

    __tablename__ = "pass_device_log"

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=100)
    message: str = Field(max_length=2000)
    at: datetime = Field(default_factory=utcnow)


class PassRefresh(TenantModel, table=True):
    """A profile whose passes may show something new (points, tier, traits): re-rendered soon."""

    __tablename__ = "pass_refresh"

    profile_id: str = Field(primary_key=True, max_length=40)
    marked_at: datetime = Field(default_factory=utcnow)
