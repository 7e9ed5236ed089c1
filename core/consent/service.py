"""Recording consent statements and reading the current state and its history.

The current state of a (profile, channel, purpose) is the statement with the latest event time,
whatever order statements arrive in; every statement is kept in the history.

Identify convention: a ``consent`` trait carries statements, either per channel
(``{"consent": {"email": true, "whatsapp": false}}``, purpose ``marketing``) or per channel and
purpose (``{"consent": {"email": {"marketing": true, "service": true}}}``). They are recorded with
source ``identify`` at the event's time and are not kept as a plain trait.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.consent.models import Consent, ConsentChange
from core.db.base import utcnow
from core.db.bulk import delete_in, insert_rows, select_in

CONSENT = Consent.__table__  # type: ignore[attr-defined]
CONSENT_CHANGE = ConsentChange.__table__  # type: ignore[attr-defined]
CONSENT_TRAIT = "consent"
DEFAULT_PURPOSE = "marketing"
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class Statement:
    """One consent statement before it is recorded."""

    channel: str
    purpose: str
    granted: bool


def statements_from_trait(value: Any) -> list[Statement]:
    """Read the ``consent`` trait convention; raises ValueError naming what is wrong."""
    if not isinstance(value, dict):
        raise ValueError("the consent trait must be an object of channels")
    out = []
    for channel, given in value.items():
        if not isinstance(channel, str) or not KEY_PATTERN.match(channel):
            raise ValueError(f"invalid consent channel {channel!r}")
        purposes = given if isinstance(given, dict) else {DEFAULT_PURPOSE: given}
        for purpose, granted in purposes.items():
            if (
                not isinstance(purpose, str)
                or not KEY_PATTERN.match(purpose)
                or not isinstance(granted, bool)
            ):
                raise ValueError(f"consent for {channel}/{purpose} must be true or false")
            out.append(Statement(channel, purpose, granted))
    return out


def record(
    session: Session,
    profile_id: str,
    statement: Statement,
    *,
    source: str,
    at: datetime,
    event_id: int | None = None,
) -> None:
    """Keep a statement in the history and update the current state if it is the newest."""
    record_many(session, [Recorded(profile_id, statement, source, at, event_id)])


@dataclass(frozen=True)
class Recorded:
    """A statement to keep, for whom, from where and when (``event_id``: the event that carried it)."""

    profile_id: str
    statement: Statement
    source: str
    at: datetime
    event_id: int | None = None


def record_many(session: Session, items: Sequence[Recorded]) -> None:
    """Keep many statements at once (set-based: processing records thousands per batch)."""
    if not items:
        return
    now = utcnow()
    rows = [
        {"profile_id": i.profile_id, "channel": i.statement.channel, "purpose": i.statement.purpose,
         "granted": i.statement.granted, "source": i.source, "at": i.at, "event_id": i.event_id, "recorded_at": now}
        for i in items
    ]  # fmt: skip
    session.flush()
    insert_rows(session.connection(), CONSENT_CHANGE, rows)
    rebuild(session, sorted({i.profile_id for i in items}))


def rebuild(session: Session, profile_ids: list[str]) -> None:
    """Recompute the current state of these profiles from their history (latest event time wins)."""
    if not profile_ids:
        return
    session.flush()
    connection = session.connection()
    delete_in(connection, CONSENT, CONSENT.c.profile_id, profile_ids, pg_type="text")
    latest: dict[tuple[str, str, str], Any] = {}
    changes = sa.select(CONSENT_CHANGE)
    found = select_in(connection, changes, CONSENT_CHANGE.c.profile_id, profile_ids, pg_type="text")
    for change in sorted(found, key=lambda c: (_aware(c.at), c.id or 0)):
        latest[(change.profile_id, change.channel, change.purpose)] = change
    insert_rows(connection, CONSENT, [
        {"profile_id": profile_id, "channel": channel, "purpose": purpose, "granted": change.granted,
         "source": change.source, "at": change.at}
        for (profile_id, channel, purpose), change in latest.items()
    ])  # fmt: skip
    # Consent objects this session loaded before are stale now.
    for instance in [obj for obj in session.identity_map.values() if isinstance(obj, Consent)]:
        session.expire(instance)


def current(session: Session, profile_id: str) -> list[Consent]:
    """The profile's current consents, by channel and purpose."""
    query = (
        select(Consent)
        .where(Consent.profile_id == profile_id)
        .order_by(col(Consent.channel), col(Consent.purpose))
    )
    return list(session.exec(query))


def history(session: Session, profile_id: str) -> list[ConsentChange]:
    """Every statement recorded for the profile, newest first."""
    query = select(ConsentChange).where(ConsentChange.profile_id == profile_id)
    return list(session.exec(query.order_by(col(ConsentChange.at).desc(), col(ConsentChange.id).desc())))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
