"""Requests a channel sandbox received, kept per tenant like a mail catcher."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Text
from sqlmodel import Field

from core.db.base import TenantModel, utcnow


class SandboxRequest(TenantModel, table=True):
    """One HTTP request a sandbox received, with the answer it gave."""

    __tablename__ = "sandbox_request"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    channel: str = Field(max_length=100, index=True)
    method: str = Field(max_length=10)
    path: str = Field(max_length=2000)
    query: str = Field(default="", max_length=2000)
    headers: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    body: str = Field(default="", sa_column=Column(Text, nullable=False))
    status_code: int
    response_body: str = Field(default="", sa_column=Column(Text, nullable=False))
