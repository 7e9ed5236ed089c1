"""The ``import_run`` table: one CSV import of a tenant, its mapping, progress and row errors."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Text
from sqlmodel import Field

from core.db.base import TenantModel, utcnow

MAX_STORED_ERRORS = 1000
"""Row errors kept on the run (``error_count`` still counts them all)."""


class ImportKind(enum.StrEnum):
    """What a CSV file holds."""

    profiles = "profiles"
    transactions = "transactions"


class ImportStatus(enum.StrEnum):
    """Where an import stands."""

    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"


class ImportRun(TenantModel, table=True):
    """One import of one file. Progress fields are committed with each chunk of stored events, so
    after a crash the run resumes exactly after the last stored chunk."""

    __tablename__ = "import_run"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20, description="profiles | transactions")
    filename: str = Field(max_length=255, description="The name the file had when it was uploaded.")
    path: str = Field(sa_column=Column(Text, nullable=False), description="Where the file is read from.")
    mapping: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSON, nullable=False),
        description="Column header → field (email, trait:first_name, consent:email, ignore, ...).",
    )
    status: str = Field(default=ImportStatus.queued, max_length=10, index=True)
    total_rows: int = 0
    processed_rows: int = 0
    new_events: int = 0
    duplicates: int = 0
    error_count: int = 0
    errors: list[dict[str, Any]] = Field(
        default_factory=list,
        sa_column=Column(JSON, nullable=False),
        description=f"The first {MAX_STORED_ERRORS} row errors: [{{line, reason}}].",
    )
    detail: str | None = Field(
        default=None, sa_column=Column(Text, nullable=True), description="Why the run failed."
    )
    created_by: str = Field(default="", max_length=320)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def finished(self) -> bool:
        """True once the run is done or failed (nothing will change any more)."""
        return self.status in {ImportStatus.done, ImportStatus.failed}
