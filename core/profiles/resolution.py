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
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text, tuple_
from sqlmodel import Session, col, select

from core.consent import service as consent
from core.db.base import utcnow
from core.identity.graph import Identifier, Observation, Resolution, Rules, resolve
from core.ingest.models import Event, EventStatus
from core.plugin_api import IdentifierType
from core.profiles.extract import display_name, extract, trait_updates
from core.profiles.models import EventIdentity, Identity, IdentityBlock, MergeRecord, Profile

log = logging.getLogger(__name__)
CHUNK = 500  # identifiers per IN (...) query


def new_profile_id() -> str:
    """A fresh random profile id."""
    return "p_" + uuid.uuid4().hex[:24]


def lock_tenant_processing(session: Session) -> None:
    """Serialize event processing within one tenant database (the caller's transaction holds it)."""
    if session.get_bind().dialect.name == "postgresql":
        session.exec(text("SELECT pg_advisory_xact_lock(hashtext('tessera.process_events'))"))  # type: ignore[call-overload]
    else:
        dbapi = session.connection().connection.dbapi_connection
        if dbapi is not None and not dbapi.in_transaction:
            dbapi.execute("BEGIN IMMEDIATE")


@dataclass
class Outcome:
    """What one resolution pass changed."""

    changed_profiles: set[str] = field(default_factory=set)
    merges: int = 0


def ingest_pending(
    session: Session, types: Mapping[str, IdentifierType], default_region: str, limit: int = 5000
) -> tuple[int, Outcome]:
    """Fold up to ``limit`` pending events (oldest first) into profiles; (events handled, outcome)."""
    lock_tenant_processing(session)
    events = list(
        session.exec(
            select(Event).where(Event.status == EventStatus.pending).order_by(col(Event.id)).limit(limit)
        )
    )
    if not events:
        return 0, Outcome()
    seeds: set[Identifier] = set()
    new_event_ids: set[int] = set()
    for event in events:
        assert event.id is not None
        found = extract(event, types, default_region)
        event.error = "; ".join(found.problems) or None
        if not found.identifiers:
            event.status = EventStatus.failed
            event.error = event.error or "The event carries no usable identifier."
        else:
            session.add_all(
                EventIdentity(event_id=event.id, type=t, value=v) for t, v in sorted(found.identifiers)
            )
            seeds |= found.identifiers
            new_event_ids.add(event.id)
        session.add(event)
    session.flush()
    outcome = resolve_component(session, seeds, Rules.from_types(types), new_event_ids=new_event_ids)
    for event in events:
        if event.status == EventStatus.pending:
            event.status = EventStatus.processed
            session.add(event)
    return len(events), outcome


def _identifier_filter(identifiers: Iterable[Identifier]) -> Any:
    return tuple_(col(EventIdentity.type), col(EventIdentity.value)).in_(list(identifiers))


def _component_event_ids(session: Session, seeds: set[Identifier]) -> set[int]:
    """Every event reachable from ``seeds`` through shared identifiers (the raw component)."""
    seen_ids: set[Identifier] = set(seeds)
    event_ids: set[int] = set()
    frontier = list(seeds)
    while frontier:
        batch, frontier = frontier[:CHUNK], frontier[CHUNK:]
        found = set(session.exec(select(EventIdentity.event_id).where(_identifier_filter(batch)))) - event_ids
        if not found:
            continue
        event_ids |= found
        found_list = sorted(found)
        for start in range(0, len(found_list), CHUNK):
            rows = session.exec(
                select(EventIdentity.type, EventIdentity.value).where(
                    col(EventIdentity.event_id).in_(found_list[start : start + CHUNK])
                )
            )
            for identifier in rows:
                pair = (identifier[0], identifier[1])
                if pair not in seen_ids:
                    seen_ids.add(pair)
                    frontier.append(pair)
    return event_ids


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def resolve_component(
    session: Session, seeds: set[Identifier], rules: Rules, new_event_ids: set[int] | None = None
) -> Outcome:
    """Replay the raw component of ``seeds`` and write the clusters back as profiles."""
    event_ids = _component_event_ids(session, seeds)
    events: dict[int, Event] = {}
    ids = sorted(event_ids)
    for start in range(0, len(ids), CHUNK):
        for event in session.exec(select(Event).where(col(Event.id).in_(ids[start : start + CHUNK]))):
            assert event.id is not None
            events[event.id] = event
    carried: defaultdict[int, set[Identifier]] = defaultdict(set)
    for start in range(0, len(ids), CHUNK):
        query = select(EventIdentity).where(col(EventIdentity.event_id).in_(ids[start : start + CHUNK]))
        for row in session.exec(query):
            carried[row.event_id].add((row.type, row.value))
    by_key: dict[tuple[Any, ...], int] = {}
    observations = []
    for event_id, identifiers in carried.items():
        event = events[event_id]
        key = (_aware(event.timestamp), event.message_id)
        by_key[key] = event_id
        observations.append(Observation(key, frozenset(identifiers)))
    component_ids = {i for identifiers in carried.values() for i in identifiers}
    blocked = _blocked_pairs(session, component_ids)
    resolution = resolve(observations, rules, blocked)
    return _write_back(session, resolution, events, by_key, component_ids, new_event_ids or set())


def _blocked_pairs(session: Session, identifiers: set[Identifier]) -> frozenset[frozenset[Identifier]]:
    values = {value for _, value in identifiers}
    rows = session.exec(
        select(IdentityBlock).where(
            col(IdentityBlock.a_value).in_(values) | col(IdentityBlock.b_value).in_(values)
        )
    )
    return frozenset(frozenset({(r.a_type, r.a_value), (r.b_type, r.b_value)}) for r in rows)


def _existing_identities(session: Session, identifiers: set[Identifier]) -> dict[Identifier, Identity]:
    found: dict[Identifier, Identity] = {}
    listed = sorted(identifiers)
    for start in range(0, len(listed), CHUNK):
        chunk = listed[start : start + CHUNK]
        query = select(Identity).where(tuple_(col(Identity.type), col(Identity.value)).in_(chunk))
        for row in session.exec(query):
            found[(row.type, row.value)] = row
    return found


def _write_back(
    session: Session,
    resolution: Resolution,
    events: dict[int, Event],
    by_key: dict[tuple[Any, ...], int],
    component_ids: set[Identifier],
    new_event_ids: set[int],
) -> Outcome:
    outcome = Outcome()
    existing = _existing_identities(session, component_ids)
    first_seen: dict[Identifier, tuple[Any, ...]] = {}
    for observations in resolution.observations.values():
        for observation in observations:
            for identifier in observation.identifiers:
                if identifier not in first_seen or observation.event_key < first_seen[identifier]:
                    first_seen[identifier] = observation.event_key
    previous_profiles = {identity.profile_id for identity in existing.values()}
    taken: dict[str, Identifier] = {}
    chosen: dict[Identifier, str] = {}
    for anchor in sorted(resolution.clusters, key=lambda a: (first_seen.get(a, ()), a)):
        members = sorted(resolution.clusters[anchor], key=lambda i: (first_seen.get(i, ()), i))
        profile_id = (
            next(
                (
                    existing[i].origin_profile_id
                    for i in members
                    if i in existing and existing[i].origin_profile_id not in taken
                ),
                None,
            )
            or new_profile_id()
        )
        taken[profile_id] = anchor
        chosen[anchor] = profile_id

    for anchor, profile_id in chosen.items():
        cluster = resolution.clusters[anchor]
        cluster_events = [by_key[o.event_key] for o in resolution.observations.get(anchor, ())]
        profile = session.get(Profile, profile_id)
        if profile is None:
            profile = Profile(id=profile_id)
            outcome.changed_profiles.add(profile_id)
        elif profile.merged_into:
            profile.merged_into = None  # a merge was undone or history rewrote it
            outcome.changed_profiles.add(profile_id)
        absorbed = {existing[i].profile_id for i in cluster if i in existing} - {profile_id}
        for identifier in cluster:
            row = existing.get(identifier)
            if row is None:
                key = first_seen.get(identifier)
                session.add(Identity(type=identifier[0], value=identifier[1], profile_id=profile_id,
                                     origin_profile_id=profile_id,
                                     first_seen=key[0] if key else utcnow()))  # fmt: skip
                outcome.changed_profiles.add(profile_id)
            elif row.profile_id != profile_id:
                row.profile_id = profile_id
                session.add(row)
                outcome.changed_profiles.add(profile_id)
        for other in sorted(absorbed - set(chosen.values())):
            _absorb(session, other, profile_id, resolution, anchor)
            outcome.merges += 1
            outcome.changed_profiles.add(profile_id)
        _apply_events(session, profile, [events[e] for e in cluster_events], new_event_ids, outcome)
        session.add(profile)
    # Profiles that lost every identifier to other clusters now live on in the cluster holding
    # what was their earliest identifier.
    for stale in sorted(previous_profiles - set(chosen.values())):
        stale_profile = session.get(Profile, stale)
        if stale_profile is not None and stale_profile.merged_into is None:
            holder = next((chosen[resolution.cluster_of[i]] for i, ident in sorted(existing.items())
                           if ident.origin_profile_id == stale and i in resolution.cluster_of), None)  # fmt: skip
            if holder:
                _absorb(session, stale, holder, resolution, None)
                outcome.merges += 1
    session.flush()
    return outcome


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


def _apply_events(
    session: Session, profile: Profile, cluster_events: list[Event], new_event_ids: set[int], outcome: Outcome
) -> None:
    """Assign the cluster's events to the profile; recompute traits, seen times and consents."""
    ordered = sorted(cluster_events, key=lambda e: (_aware(e.timestamp), e.message_id))
    traits: dict[str, Any] = {}
    times: dict[str, Any] = {}
    moved_consents: list[int] = []
    for event in ordered:
        assert event.id is not None
        if event.profile_id != profile.id:
            event.profile_id = profile.id
            session.add(event)
            moved_consents.append(event.id)
        for key, value in trait_updates(event).items():
            traits[key] = value
            times[key] = [_aware(event.timestamp).isoformat(), event.message_id]
        if event.id in new_event_ids and isinstance(event.traits, dict) and "consent" in event.traits:
            try:
                statements = consent.statements_from_trait(event.traits["consent"])
            except ValueError as exc:
                event.error = "; ".join(filter(None, [event.error, f"consent: {exc}"]))
                session.add(event)
                statements = []
            for statement in statements:
                consent.record(session, profile.id, statement, source="identify", at=_aware(event.timestamp),
                               event_id=event.id)  # fmt: skip
    if moved_consents:
        rows = session.exec(
            select(consent.ConsentChange).where(col(consent.ConsentChange.event_id).in_(moved_consents))
        )
        previous = set()
        for row in rows:
            previous.add(row.profile_id)
            row.profile_id = profile.id
            session.add(row)
        session.flush()
        consent.rebuild(session, sorted(previous | {profile.id}))
    first: datetime | None = _aware(ordered[0].timestamp) if ordered else None
    last: datetime | None = _aware(ordered[-1].timestamp) if ordered else None
    identifiers = [
        (i.type, i.value) for i in session.exec(select(Identity).where(Identity.profile_id == profile.id))
    ]
    name = display_name(traits, sorted(identifiers))
    if (profile.traits, profile.trait_times, profile.first_seen, profile.last_seen, profile.display_name) != (
        traits, times, first, last, name,
    ):  # fmt: skip
        profile.traits, profile.trait_times, profile.display_name = traits, times, name
        profile.first_seen, profile.last_seen = first, last
        profile.updated_at = utcnow()
        outcome.changed_profiles.add(profile.id)


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
