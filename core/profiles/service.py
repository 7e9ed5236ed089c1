"""Reading profiles: by id (following merges), by identifier, by search, and their timeline."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import or_
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, func, select

from core.db.base import utcnow
from core.ingest.models import Event
from core.profiles.models import Identity, MergeRecord, Profile

MAX_MERGE_HOPS = 50


class ProfileNotFound(LookupError):
    """No profile with that id or identifier in this tenant."""


def get_profile(session: Session, profile_id: str) -> Profile:
    """The profile, or the one it was merged into; :class:`ProfileNotFound` otherwise."""
    profile = session.get(Profile, profile_id)
    hops = 0
    while profile is not None and profile.merged_into and hops < MAX_MERGE_HOPS:
        profile = session.get(Profile, profile.merged_into)
        hops += 1
    if profile is None:
        raise ProfileNotFound(f"No profile {profile_id!r}.")
    return profile


def find_by_identifier(session: Session, type_: str, value: str) -> Profile:
    """The profile an identifier (already normalized) resolves to."""
    identity = session.exec(select(Identity).where(Identity.type == type_, Identity.value == value)).first()
    if identity is None:
        raise ProfileNotFound(f"No profile with {type_} {value!r}.")
    return get_profile(session, identity.profile_id)


def retire_identifiers(connection: Connection, type_: str, values: Collection[str]) -> int:
    """Stop sending to these identifiers of one type (the provider says they are gone); how many.

    They keep identifying their profile; an event that carries one again revives it.
    """
    identity = Identity.__table__  # type: ignore[attr-defined]
    result = connection.execute(
        sa.update(identity)
        .where(
            identity.c.type == type_, identity.c.value.in_(sorted(values)), identity.c.retired_at.is_(None)
        )
        .values(retired_at=utcnow())
    )
    return result.rowcount or 0


def identities_of(session: Session, profile_id: str) -> list[Identity]:
    """The identifiers that resolve to a profile, by type then value."""
    query = select(Identity).where(Identity.profile_id == profile_id)
    return list(session.exec(query.order_by(col(Identity.type), col(Identity.value))))


def merges_of(session: Session, profile_id: str) -> list[MergeRecord]:
    """Merges this profile took part in, newest first."""
    query = select(MergeRecord).where(
        or_(col(MergeRecord.survivor_id) == profile_id, col(MergeRecord.absorbed_id) == profile_id)
    )
    return list(session.exec(query.order_by(col(MergeRecord.id).desc())))


def search(session: Session, text: str, limit: int = 50) -> list[Profile]:
    """Active profiles whose name or any identifier contains ``text`` (case-insensitive)."""
    needle = f"%{text.strip().lower()}%"
    by_identity = select(Identity.profile_id).where(func.lower(Identity.value).like(needle))
    query = select(Profile).where(
        col(Profile.merged_into).is_(None),
        or_(func.lower(Profile.display_name).like(needle), col(Profile.id).in_(by_identity)),
    )
    return list(session.exec(query.order_by(col(Profile.last_seen).desc()).limit(limit)))


def pick(session: Session, text: str, limit: int = 10) -> list[Profile]:
    """Profiles for a picker: the one with this exact id or email, else a :func:`search`."""
    text = text.strip()
    if not text:
        return []
    for lookup in (
        lambda: get_profile(session, text),
        lambda: find_by_identifier(session, "email", text.lower()),
    ):
        try:
            return [lookup()]
        except ProfileNotFound:
            continue
    return search(session, text, limit=limit)


def recent(session: Session, limit: int = 50) -> list[Profile]:
    """Active profiles, most recently seen first."""
    query = select(Profile).where(col(Profile.merged_into).is_(None))
    return list(session.exec(query.order_by(col(Profile.last_seen).desc(), col(Profile.id)).limit(limit)))


def count_profiles(session: Session) -> int:
    """How many active profiles the tenant has."""
    return session.exec(
        select(func.count()).select_from(Profile).where(col(Profile.merged_into).is_(None))
    ).one()


@dataclass(frozen=True)
class TimelinePage:
    """One page of a profile's timeline, newest first; ``next_offset`` continues it."""

    events: list[Event]
    next_offset: int | None
    types: list[str]
    sources: list[str]


def timeline(
    session: Session,
    profile_id: str,
    *,
    type_: str | None = None,
    source: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> TimelinePage:
    """The profile's events from every source, newest first, filtered by type and source."""
    query = select(Event).where(Event.profile_id == profile_id)
    if type_:
        query = query.where(or_(col(Event.type) == type_, col(Event.event) == type_))
    if source:
        query = query.where(Event.source == source)
    ordered = query.order_by(col(Event.timestamp).desc(), col(Event.id).desc())
    rows = list(session.exec(ordered.offset(offset).limit(limit + 1)))
    kinds = select(Event.type).where(Event.profile_id == profile_id).distinct()
    sources = select(Event.source).where(Event.profile_id == profile_id).distinct()
    return TimelinePage(
        events=rows[:limit],
        next_offset=offset + limit if len(rows) > limit else None,
        types=sorted(set(session.exec(kinds))),
        sources=sorted(set(session.exec(sources))),
    )
