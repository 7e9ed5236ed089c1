"""Setting traits on profiles from inside Tessera (a journey step, ...), the way traits change.

Traits come from identify events (last write wins by event time). Setting one stores such an
event, carrying one of the profile's identifiers, so that replaying the profile's history (after a
merge or an undo) keeps the value; it also writes the value on the profile at once, with the
event's time and message id in ``trait_times``, so what runs next sees it and processing the event
later changes nothing. The caller re-evaluates segments for the profiles after committing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from core.db.base import utcnow
from core.db.bulk import select_in, update_rows
from core.ingest.service import store, validate
from core.profiles.models import Identity, Profile

PROFILE = Profile.__table__  # type: ignore[attr-defined]
IDENTITY = Identity.__table__  # type: ignore[attr-defined]
# Which identifier carries the event, best first: the raw ids, then the usual merge keys.
PREFERRED = ("user_id", "anonymous_id", "email", "phone")


@dataclass(frozen=True)
class TraitChange:
    """Traits to set on one profile; ``message_id`` names the change (a repeat stores nothing new)."""

    profile_id: str
    traits: dict[str, Any]
    message_id: str


def _carrier(identities: list[tuple[str, str, datetime]]) -> dict[str, Any] | None:
    """The identifying part of an identify event for one of these (type, value, first seen)."""
    if not identities:
        return None
    rank = {name: index for index, name in enumerate(PREFERRED)}
    kind, value, _ = min(identities, key=lambda i: (rank.get(i[0], len(PREFERRED)), i[2], i[1]))
    if kind == "user_id":
        return {"userId": value}
    if kind == "anonymous_id":
        return {"anonymousId": value}
    return {"context": {"traits": {kind: value}}}


def set_traits(
    session: Session,
    tenant_slug: str,
    changes: Sequence[TraitChange],
    source: str = "tessera",
    at: datetime | None = None,
) -> set[str]:
    """Apply ``changes`` to live profiles; the ids of the profiles changed (a profile that does
    not exist, was merged away or has no identifier is left out). The caller commits."""
    at = at or utcnow()
    connection = session.connection()
    ids = list(dict.fromkeys(c.profile_id for c in changes))
    query = sa.select(PROFILE.c.id, PROFILE.c.traits, PROFILE.c.trait_times).where(
        PROFILE.c.merged_into.is_(None)
    )
    profiles = {row.id: row for row in select_in(connection, query, PROFILE.c.id, ids, pg_type="text")}
    identities: dict[str, list[tuple[str, str, datetime]]] = {}
    query = sa.select(IDENTITY.c.profile_id, IDENTITY.c.type, IDENTITY.c.value, IDENTITY.c.first_seen)
    for pid, kind, value, first_seen in select_in(connection, query, IDENTITY.c.profile_id, list(profiles),
                                                  pg_type="text"):  # fmt: skip
        identities.setdefault(pid, []).append((kind, value, first_seen))
    events: list[dict[str, Any]] = []
    rows: dict[str, dict[str, Any]] = {}
    changed: set[str] = set()
    for change in changes:
        profile, carrier = profiles.get(change.profile_id), _carrier(identities.get(change.profile_id, []))
        if profile is None or carrier is None:
            continue
        events.append({"type": "identify", "messageId": change.message_id, "timestamp": at.isoformat(),
                       "traits": dict(change.traits), **carrier})  # fmt: skip
        row = rows.setdefault(change.profile_id, {"id": change.profile_id, "traits": dict(profile.traits or {}),
                                                  "trait_times": dict(profile.trait_times or {}), "updated_at": at})  # fmt: skip
        for name, value in change.traits.items():
            row["traits"][name] = value
            row["trait_times"][name] = [at.isoformat(), change.message_id]
        changed.add(change.profile_id)
    if events:
        prepared = validate(events, source=source)
        if prepared.rejected:
            raise ValueError(f"cannot store a trait event: {prepared.rejected[0]['reason']}")
        store(session, tenant_slug, prepared)
        update_rows(connection, PROFILE, list(rows.values()))
    return changed
