"""The outbox: jobs written to the tenant database before any queue message is sent."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field

from core.db.base import TenantModel, utcnow


class JobStatus(enum.StrEnum):
    """Where a job stands. ``running`` carries a lease; an expired lease means the worker died."""

    pending = "pending"
    running = "running"
    done = "done"
    failed = "failed"


class Job(TenantModel, table=True):
    """One unit of durable work; the queue message only carries its id."""

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=100, index=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: JobStatus = Field(default=JobStatus.pending, index=True, max_length=10)
    idempotency_key: str | None = Field(default=None, unique=True, max_length=200)
    due_at: datetime = Field(default_factory=utcnow, index=True)
    attempts: int = 0
    max_attempts: int = 8
    lease_until: datetime | None = None
    enqueued_at: datetime | None = None  # when its message was last sent
    # When the sweeper sends its message again if it has still not run (lost, or a long queue).
    resend_at: datetime | None = Field(default=None, index=True)
    last_error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
