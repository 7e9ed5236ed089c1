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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from core.consent.models import Consent, ConsentChange

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
) -> ConsentChange:
    """Keep a statement in the history and update the current state if it is the newest."""
    change = ConsentChange(
        profile_id=profile_id, channel=statement.channel, purpose=statement.purpose,
        granted=statement.granted, source=source, at=at, event_id=event_id,
    )  # fmt: skip
    session.add(change)
    session.flush()
    rebuild(session, [profile_id])
    return change


def rebuild(session: Session, profile_ids: list[str]) -> None:
    """Recompute the current state of these profiles from their history (latest event time wins)."""
    if not profile_ids:
        return
    for row in session.exec(select(Consent).where(col(Consent.profile_id).in_(profile_ids))):
        session.delete(row)
    session.flush()
    latest: dict[tuple[str, str, str], ConsentChange] = {}
    changes = session.exec(select(ConsentChange).where(col(ConsentChange.profile_id).in_(profile_ids)))
    for change in sorted(changes, key=lambda c: (_aware(c.at), c.id or 0)):
        latest[(change.profile_id, change.channel, change.purpose)] = change
    for (profile_id, channel, purpose), change in latest.items():
        session.add(Consent(profile_id=profile_id, channel=channel, purpose=purpose, granted=change.granted,
                            source=change.source, at=change.at))  # fmt: skip


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
