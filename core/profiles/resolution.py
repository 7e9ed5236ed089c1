"""Applying identity resolution to the tenant database: events in, profiles out.

New events are folded in by replaying their *raw component* (every event reachable from their
identifiers through shared identifiers) with :func:`core.identity.graph.resolve`; by the graph's
locality property that gives exactly what replaying the whole history would, so the outcome does
not depend on the order events arrive in. The result is then written back: identities point at
their cluster's profile, profiles that became one are merged (recorded, reversible), events are
assigned, traits are recomputed (last write wins by event time) and consents re-attached.

A cluster keeps a stable profile id: the ``origin_profile_id`` of its earliest identifier that
already had one, so growing a cluster never renames it and undoing a merge gives the absorbed
profile its own id back.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlmodel import Session, col, select

from core.consent import service as consent
from core.db.base import utcnow
from core.db.bulk import SQLITE_CHUNK, chunks, insert_rows, select_in, select_pairs_in, update_rows
from core.db.locks import transaction_lock
from core.identity.graph import Identifier, Observation, Resolution, Rules, resolve
from core.ingest.models import Event, EventStatus
from core.loyalty import members as loyalty_members
from core.passes import merging as pass_merging
from core.plugin_api import IdentifierType
from core.profiles.extract import TRAIT_EVENT_TYPES, display_name, extract, trait_updates
from core.profiles.models import EventIdentity, Identity, IdentityBlock, MergeRecord, Profile
from core.traits.purchases import ORDER_EVENTS

log = logging.getLogger(__name__)
EVENT = Event.__table__  # type: ignore[attr-defined]
EVENT_IDENTITY = EventIdentity.__table__  # type: ignore[attr-defined]
IDENTITY = Identity.__table__  # type: ignore[attr-defined]
PROFILE = Profile.__table__  # type: ignore[attr-defined]
BLOCK = IdentityBlock.__table__  # type: ignore[attr-defined]
EventKey = tuple[datetime, str]


def new_profile_id() -> str:
    """A fresh random profile id."""
    return "p_" + uuid.uuid4().hex[:24]


def lock_tenant_processing(session: Session) -> None:
    """Serialize event processing within one tenant database (the caller's transaction holds it)."""
    transaction_lock(session, "tessera.process_events")


def has_pending_events(session: Session) -> bool:
    """Whether any event waits to be processed."""
    query = sa.select(EVENT.c.id).where(EVENT.c.status == EventStatus.pending).limit(1)
    return session.connection().execute(query).first() is not None


@dataclass
class Outcome:
    """What one resolution pass changed."""

    changed_profiles: set[str] = field(default_factory=set)
    merges: int = 0
    # Profiles whose orders may have changed: new order events, merges, events moved between profiles.
    purchasers: set[str] = field(default_factory=set)


def ingest_pending(
    session: Session, types: Mapping[str, IdentifierType], default_region: str, limit: int = 5000
) -> tuple[int, Outcome]:
    """Fold up to ``limit`` pending events (oldest first) into profiles; (events handled, outcome)."""
    lock_tenant_processing(session)
    connection = session.connection()
    columns = [
        EVENT.c[name] for name in ("id", "type", "event", "user_id", "anonymous_id", "previous_id", "traits")
    ]
    columns.append(EVENT.c.context["traits"].label("context_traits"))  # not the whole context: it is big
    columns.append(EVENT.c.context[("device", "token")].label("device_token"))
    pending = connection.execute(
        sa.select(*columns).where(EVENT.c.status == EventStatus.pending).order_by(EVENT.c.id).limit(limit)
    ).all()
    seeds: set[Identifier] = set()
    new_events: dict[int, Any] = {}
    links: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    errors: dict[int, str] = {}
    for row in pending:
        found = extract(row, types, default_region)
        problems = "; ".join(found.problems)
        if not found.identifiers:
            error = problems or "The event carries no usable identifier."
            failed.append({"id": row.id, "status": EventStatus.failed, "error": error})
            continue
        links.extend({"event_id": row.id, "type": t, "value": v} for t, v in sorted(found.identifiers))
        seeds |= found.identifiers
        new_events[row.id] = row
        if problems:
            errors[row.id] = problems
    insert_rows(connection, EVENT_IDENTITY, links)
    update_rows(connection, EVENT, failed)
    outcome = (
        resolve_component(session, seeds, Rules.from_types(types), new_events=new_events, errors=errors)
        if seeds
        else Outcome()
    )
    return len(pending), outcome


@dataclass
class _Component:
    """A raw component as stored: each event's identifiers, key, current profile and type."""

    carried: dict[int, set[Identifier]] = field(default_factory=dict)
    key: dict[int, EventKey] = field(default_factory=dict)
    profile_of: dict[int, str | None] = field(default_factory=dict)
    type_of: dict[int, str] = field(default_factory=dict)


def _load_component(connection: Connection, seeds: set[Identifier]) -> _Component:
    """Every event reachable from ``seeds`` through shared identifiers (the raw component)."""
    component = _Component()
    interned: dict[Identifier, Identifier] = {}  # one tuple per identifier, however many events carry it
    seen: set[Identifier] = set(seeds)
    frontier = list(seeds)
    links = EVENT_IDENTITY.c
    rows_of = sa.select(links.event_id, links.type, links.value, EVENT.c.timestamp, EVENT.c.message_id,
                     EVENT.c.profile_id, EVENT.c.type).join(EVENT, EVENT.c.id == links.event_id)  # fmt: skip
    while frontier:
        touching = {
            event_id
            for (event_id,) in select_pairs_in(
                connection, sa.select(links.event_id), links.type, links.value, frontier
            )
            if event_id not in component.key
        }
        frontier = []
        for event_id, type_key, value, timestamp, message_id, profile_id, kind in select_in(
            connection, rows_of, links.event_id, touching, pg_type="bigint"
        ):
            identifier = interned.setdefault((type_key, value), (type_key, value))
            if event_id not in component.key:
                component.key[event_id] = (_aware(timestamp), message_id)
                component.profile_of[event_id] = profile_id
                component.type_of[event_id] = kind
                component.carried[event_id] = set()
            component.carried[event_id].add(identifier)
            if identifier not in seen:
                seen.add(identifier)
                frontier.append(identifier)
    return component


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def resolve_component(
    session: Session,
    seeds: set[Identifier],
    rules: Rules,
    new_events: Mapping[int, Any] | None = None,
    errors: Mapping[int, str] | None = None,
) -> Outcome:
    """Replay the raw component of ``seeds`` and write the clusters back as profiles.

    ``new_events`` are the rows (id, type, traits, ...) of events folded in for the first time:
    they get their profile and status, and their consent statements are recorded; ``errors``
    holds the problems met reading some of them.
    """
    session.flush()
    connection = session.connection()
    component = _load_component(connection, seeds)
    by_key: dict[EventKey, int] = {}
    observations = []
    for event_id, identifiers in component.carried.items():
        key = component.key[event_id]
        by_key[key] = event_id
        observations.append(Observation(key, frozenset(identifiers)))
    blocked = _blocked_pairs(
        connection, {i for identifiers in component.carried.values() for i in identifiers}
    )
    resolution = resolve(observations, rules, blocked)
    del observations
    outcome = _WriteBack(session, resolution, component, by_key, new_events or {}, dict(errors or {})).run()
    session.expire_all()  # rows changed under the ORM's feet
    return outcome


def _blocked_pairs(connection: Connection, identifiers: set[Identifier]) -> frozenset[frozenset[Identifier]]:
    if connection.execute(sa.select(BLOCK.c.id).limit(1)).first() is None:  # the usual case: nothing blocked
        return frozenset()
    values = {value for _, value in identifiers}
    columns = sa.select(BLOCK.c.id, BLOCK.c.a_type, BLOCK.c.a_value, BLOCK.c.b_type, BLOCK.c.b_value)
    rows = {
        row.id: row
        for match in (BLOCK.c.a_value, BLOCK.c.b_value)
        for row in select_in(connection, columns, match, values, pg_type="text")
    }
    return frozenset(frozenset({(r.a_type, r.a_value), (r.b_type, r.b_value)}) for r in rows.values())


def _parse_time(stored: Any) -> EventKey | None:
    """A ``trait_times`` entry ``[iso time, message id]`` as an event key (None if unreadable)."""
    try:
        return (_aware(datetime.fromisoformat(stored[0])), str(stored[1]))
    except (TypeError, ValueError, IndexError):
        return None


class _WriteBack:
    """Writes one resolution to the tables: identities, profiles, merges, events, traits, consents."""

    def __init__(
        self,
        session: Session,
        resolution: Resolution,
        component: _Component,
        by_key: dict[EventKey, int],
        new_events: Mapping[int, Any],
        errors: dict[int, str],
    ):
        self.session, self.connection = session, session.connection()
        self.resolution, self.component, self.by_key = resolution, component, by_key
        self.new_events, self.errors = new_events, errors
        self.outcome = Outcome()
        self.now = utcnow()

    def run(self) -> Outcome:
        columns = sa.select(IDENTITY.c.type, IDENTITY.c.value, IDENTITY.c.id, IDENTITY.c.profile_id,
                         IDENTITY.c.origin_profile_id, IDENTITY.c.retired_at)  # fmt: skip
        self.existing = {
            (row.type, row.value): row
            for row in select_pairs_in(
                self.connection, columns, IDENTITY.c.type, IDENTITY.c.value, self.resolution.cluster_of
            )
        }
        self.first_seen = self._first_seen()
        self.chosen = self._choose_profile_ids()
        previous = {row.profile_id for row in self.existing.values()}
        self.stored = {
            row.id: row
            for row in select_in(
                self.connection,
                PROFILE.select(),
                PROFILE.c.id,
                set(self.chosen.values()) | previous,
                pg_type="text",
            )  # fmt: skip
        }
        self.profile_of_event = {
            self.by_key[observation.event_key]: self.chosen[anchor]
            for anchor, observations in self.resolution.observations.items()
            for observation in observations
        }
        self._write_identities()
        self._merge(previous)
        moved = self._move_events()
        self._record_consents()
        self.session.flush()  # the ORM's share (merges, consents) before the bulk writes
        self._write_profiles(moved)
        self._write_new_events()
        return self.outcome

    def _first_seen(self) -> dict[Identifier, EventKey]:
        first_seen: dict[Identifier, EventKey] = {}
        for observations in self.resolution.observations.values():
            for observation in observations:
                for identifier in observation.identifiers:
                    if identifier not in first_seen or observation.event_key < first_seen[identifier]:
                        first_seen[identifier] = observation.event_key
        return first_seen

    def _choose_profile_ids(self) -> dict[Identifier, str]:
        """Each cluster's profile id: the origin profile of its earliest identifier that has one."""
        first_seen, existing = self.first_seen, self.existing
        taken: set[str] = set()
        chosen: dict[Identifier, str] = {}
        for anchor in sorted(self.resolution.clusters, key=lambda a: (first_seen.get(a, ()), a)):
            members = sorted(self.resolution.clusters[anchor], key=lambda i: (first_seen.get(i, ()), i))
            profile_id = next(
                (existing[i].origin_profile_id for i in members
                 if i in existing and existing[i].origin_profile_id not in taken),
                None,
            ) or new_profile_id()  # fmt: skip
            taken.add(profile_id)
            chosen[anchor] = profile_id
        return chosen

    def _write_identities(self) -> None:
        added, moved = [], []
        for anchor, profile_id in self.chosen.items():
            for identifier in self.resolution.clusters[anchor]:
                row = self.existing.get(identifier)
                if row is None:
                    key = self.first_seen.get(identifier)
                    added.append({"type": identifier[0], "value": identifier[1], "profile_id": profile_id,
                                  "origin_profile_id": profile_id, "first_seen": key[0] if key else self.now})  # fmt: skip
                    self.outcome.changed_profiles.add(profile_id)
                elif row.profile_id != profile_id:
                    moved.append({"id": row.id, "profile_id": profile_id})
                    self.outcome.changed_profiles.add(profile_id)
        insert_rows(self.connection, IDENTITY, added)
        update_rows(self.connection, IDENTITY, moved)
        # A retired address that a new event carries again (the app registered anew) is live again.
        carried = set().union(*(self.component.carried.get(event_id, set()) for event_id in self.new_events))
        revived = [{"id": row.id, "retired_at": None} for identifier, row in self.existing.items()
                   if row.retired_at is not None and identifier in carried]  # fmt: skip
        update_rows(self.connection, IDENTITY, revived)

    def _merge(self, previous: set[str]) -> None:
        """Record the merges: profiles whose identifiers now lie in another cluster's profile."""
        chosen_ids = set(self.chosen.values())
        for anchor, profile_id in self.chosen.items():
            cluster = self.resolution.clusters[anchor]
            absorbed = {self.existing[i].profile_id for i in cluster if i in self.existing} - {profile_id}
            for other in sorted(absorbed - chosen_ids):
                _absorb(self.session, other, profile_id, self.resolution, anchor)
                self.outcome.merges += 1
                self.outcome.changed_profiles.add(profile_id)
                self.outcome.purchasers |= {profile_id, other}
        # Profiles that lost every identifier to other clusters now live on in the cluster holding
        # what was their earliest identifier.
        for stale in sorted(previous - chosen_ids):
            stored = self.stored.get(stale)
            if stored is not None and stored.merged_into is None:
                holder = next((self.chosen[self.resolution.cluster_of[i]] for i, row in sorted(self.existing.items())
                               if row.origin_profile_id == stale and i in self.resolution.cluster_of), None)  # fmt: skip
                if holder:
                    _absorb(self.session, stale, holder, self.resolution, None)
                    self.outcome.merges += 1
                    self.outcome.purchasers |= {holder, stale}

    def _move_events(self) -> set[str]:
        """Give already processed events their (new) profile; returns the profiles that gained or lost."""
        moved: list[dict[str, Any]] = []
        touched: set[str | None] = set()
        for event_id, profile_id in self.profile_of_event.items():
            before = self.component.profile_of[event_id]
            if event_id not in self.new_events and before != profile_id:
                moved.append({"id": event_id, "profile_id": profile_id})
                touched |= {profile_id, before} - {None}
        update_rows(self.connection, EVENT, moved)
        if moved:
            profile_of: dict[int, str] = {row["id"]: row["profile_id"] for row in moved}
            moved_ids = list(profile_of)
            changes = [
                change
                for chunk in chunks(
                    moved_ids, SQLITE_CHUNK
                )  # IN lists stay under every bound-parameter limit
                for change in self.session.exec(
                    select(consent.ConsentChange).where(col(consent.ConsentChange.event_id).in_(chunk))
                )
            ]
            previous = set()
            for change in changes:
                previous.add(change.profile_id)
                change.profile_id = profile_of[change.event_id or 0]
                self.session.add(change)
            self.session.flush()
            consent.rebuild(self.session, sorted(previous | set(profile_of.values())))
        gained_or_lost = {profile_id for profile_id in touched if profile_id is not None}
        self.outcome.purchasers |= gained_or_lost
        return gained_or_lost

    def _record_consents(self) -> None:
        """Record the consent statements of new identify events, oldest first."""
        with_consent = sorted(
            (self.component.key[event_id], event_id)
            for event_id, row in self.new_events.items()
            if row.type in TRAIT_EVENT_TYPES and isinstance(row.traits, dict) and "consent" in row.traits
        )
        recorded: list[consent.Recorded] = []
        for key, event_id in with_consent:
            try:
                statements = consent.statements_from_trait(self.new_events[event_id].traits["consent"])
            except ValueError as exc:
                self.errors[event_id] = "; ".join(
                    filter(None, [self.errors.get(event_id), f"consent: {exc}"])
                )
                continue
            profile_id = self.profile_of_event[event_id]
            recorded.extend(consent.Recorded(profile_id, s, "identify", key[0], event_id) for s in statements)
        consent.record_many(self.session, recorded)

    def _write_profiles(self, moved: set[str]) -> None:
        """Insert new profiles; update traits (last write wins), seen times and names of the others.

        A profile whose events only grew gets the new events' traits over its stored ones; one
        that gained or lost older events, or comes back from a merge, is recomputed from all its
        events.
        """
        stored = self.stored
        recompute = {
            profile_id for profile_id in self.chosen.values()
            if profile_id not in stored or stored[profile_id].merged_into or profile_id in moved
        }  # fmt: skip
        older = [
            event_id
            for event_id, profile_id in self.profile_of_event.items()
            if profile_id in recompute
            and event_id not in self.new_events
            and self.component.type_of[event_id] in TRAIT_EVENT_TYPES
        ]
        trait_rows: dict[int, Any] = dict(self.new_events)
        query = sa.select(EVENT.c.id, EVENT.c.type, EVENT.c.traits)
        trait_rows.update(
            (row.id, row) for row in select_in(self.connection, query, EVENT.c.id, older, pg_type="bigint")
        )
        inserts, updates = [], []
        for anchor, profile_id in self.chosen.items():
            row = stored.get(profile_id)
            fresh = profile_id in recompute
            traits: dict[str, Any] = {} if fresh or row is None else dict(row.traits)
            times: dict[str, Any] = {} if fresh or row is None else dict(row.trait_times)
            observations = self.resolution.observations.get(anchor, ())
            for observation in observations:
                event_id = self.by_key[observation.event_key]
                if event_id not in trait_rows:
                    continue
                for name, value in trait_updates(trait_rows[event_id]).items():
                    if not fresh and name in times:
                        kept = _parse_time(times[name])
                        if kept is not None and kept > observation.event_key:
                            continue
                    traits[name] = value
                    times[name] = [observation.event_key[0].isoformat(), observation.event_key[1]]
            values = {
                "traits": traits,
                "trait_times": times,
                "display_name": display_name(traits, sorted(self.resolution.clusters[anchor])),
                "first_seen": observations[0].event_key[0] if observations else None,
                "last_seen": observations[-1].event_key[0] if observations else None,
                "merged_into": None,
            }
            if row is None:
                inserts.append({"id": profile_id, "created_at": self.now, "updated_at": self.now, **values})
            elif any(getattr(row, name) != value for name, value in values.items()):
                updates.append({"id": profile_id, "updated_at": self.now, **values})
            else:
                continue
            self.outcome.changed_profiles.add(profile_id)
        insert_rows(self.connection, PROFILE, inserts)
        update_rows(self.connection, PROFILE, updates)

    def _write_new_events(self) -> None:
        rows = [
            {"id": event_id, "profile_id": self.profile_of_event[event_id], "status": EventStatus.processed,
             "error": self.errors.get(event_id)}
            for event_id in self.new_events
        ]  # fmt: skip
        update_rows(self.connection, EVENT, rows)
        self.outcome.purchasers |= {
            self.profile_of_event[event_id]
            for event_id, row in self.new_events.items()
            if row.type == "track" and row.event in ORDER_EVENTS
        }


def _absorb(
    session: Session, absorbed_id: str, survivor_id: str, resolution: Resolution, anchor: Identifier | None
) -> None:
    profile = session.get(Profile, absorbed_id)
    if profile is None or profile.merged_into == survivor_id:
        return
    profile.merged_into = survivor_id
    profile.updated_at = utcnow()
    session.add(profile)
    cause = next((m for m in resolution.merges if anchor in (m.surviving_cluster_anchor, m.absorbed_cluster_anchor)),
                 None)  # fmt: skip
    record = MergeRecord(
        survivor_id=survivor_id,
        absorbed_id=absorbed_id,
        cause={
            "rule": "shared identifiers",
            "identifiers": [list(i) for i in sorted(cause.cause_identifiers)] if cause else [],
            "event_time": cause.event_key[0].isoformat() if cause else None,
            "message_id": cause.event_key[1] if cause else None,
        },
    )
    if cause:
        record.cause_event_id = session.exec(
            select(Event.id).where(Event.message_id == cause.event_key[1])
        ).first()
    session.add(record)
    consent_rows = list(
        session.exec(select(consent.ConsentChange).where(consent.ConsentChange.profile_id == absorbed_id))
    )
    for row in consent_rows:
        row.profile_id = survivor_id
        session.add(row)
    session.flush()
    consent.rebuild(session, [absorbed_id, survivor_id])
    loyalty_members.absorb(session, absorbed_id, survivor_id)
    pass_merging.absorb(session, absorbed_id, survivor_id)


def undo_merge(session: Session, merge_id: int, actor: str, rules: Rules) -> MergeRecord:
    """Separate two merged profiles again: block their anchors from sharing a profile and replay."""
    record = session.get(MergeRecord, merge_id)
    if record is None:
        raise LookupError(f"No merge {merge_id}.")
    if record.undone_at is not None:
        raise ValueError(f"Merge {merge_id} was already undone.")
    anchors = []
    for profile_id in (record.survivor_id, record.absorbed_id):
        anchor = session.exec(
            select(Identity)
            .where(Identity.origin_profile_id == profile_id)
            .order_by(col(Identity.first_seen), col(Identity.id))
        ).first()
        if anchor is None:
            raise ValueError(f"Profile {profile_id} has no identifiers left; the merge cannot be undone.")
        anchors.append((anchor.type, anchor.value))
    (a_type, a_value), (b_type, b_value) = anchors
    session.add(
        IdentityBlock(a_type=a_type, a_value=a_value, b_type=b_type, b_value=b_value, merge_id=merge_id)
    )
    record.undone_at, record.undone_by = utcnow(), actor
    session.add(record)
    session.flush()
    resolve_component(session, set(anchors), rules)
    return record
