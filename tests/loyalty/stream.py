"""Feeding loyalty events: through the real ingestion and processing path, or as stream rows
straight to the engine (for property tests that apply thousands of streams)."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from core.db.engines import control_session
from core.ingest.service import accept
from core.loyalty.engine import Setup, apply_rows, load_setup
from core.loyalty.models import EarningRule, RuleKind, RuleStatus
from core.loyalty.state import EventRow
from core.profiles.jobs import process_events
from core.profiles.service import find_by_identifier
from core.tenancy.tenants import get_tenant
from tests.loyalty.club import TENANT, Club
from tests.support import run_due_jobs

_ids = itertools.count(1)


def rule(club: Club, name: str, event: str = "Order Completed", **settings: Any) -> EarningRule:
    """An active earning rule of the club's program, committed."""
    values: dict[str, Any] = {"kind": RuleKind.fixed, "points": 10, **settings}
    stored = EarningRule(program_id=club.program_id, name=name, event=event, status=RuleStatus.active,
                         activated_at=datetime(2020, 1, 1, tzinfo=UTC), **values)  # fmt: skip
    club.session.add(stored)
    club.session.commit()
    return stored


def track(club: Club, user: str, event: str, at: datetime | None = None, **properties: Any) -> str:
    """Ingest a track event for ``user`` and run processing and loyalty as workers would; the profile id."""
    body = {"type": "track", "userId": user, "event": event, "properties": properties,
            "timestamp": (at or datetime.now(UTC)).isoformat(), "messageId": uuid.uuid4().hex}  # fmt: skip
    result = accept(club.session, TENANT, [body])
    assert not result.rejected, result.rejected
    process_events(TENANT, {})
    run_due_jobs(TENANT, club.database)
    club.session.expire_all()
    return find_by_identifier(club.session, "user_id", user).id


def setup_of(club: Club) -> Setup:
    """The engine's view of the tenant's programs now."""
    with control_session() as control:
        tenant = get_tenant(control, TENANT)
    return load_setup(club.session, tenant, set())


def row(
    profile_id: str, event: str, at: datetime, message_id: str | None = None, **properties: Any
) -> EventRow:
    """A processed event as the stream gives it."""
    number = next(_ids)
    return EventRow(number, message_id or f"m{number}", event, profile_id, properties, at)


def apply(session: Session, setup: Setup, rows: list[EventRow], now: datetime | None = None) -> set[str]:
    """Apply rows in the session and commit; the profiles that changed."""
    changed = apply_rows(session, setup, rows, now)
    session.commit()
    return changed
