"""Export and erasure of one person's data (every table of the tenant database that holds it).

Both are audited by the caller in the control database (who, when, which profile: the audit entry
names the profile id, never the person's identifiers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import delete, or_, tuple_, update
from sqlmodel import Session, col, select

from core.consent.models import Consent, ConsentChange
from core.consent.service import current, history
from core.delivery.models import Delivery, LinkClick
from core.ingest.models import Event
from core.internal_events.models import InternalEvent
from core.journeys.models import JourneyEntry, JourneyVisit
from core.profiles.models import EventIdentity, Identity, IdentityBlock, MergeRecord, Profile
from core.profiles.service import get_profile, identities_of, merges_of
from core.sandbox.models import SandboxRequest
from core.segments.models import SegmentMembership
from core.traits.models import ComputedTraits

DELIVERY = Delivery.__table__  # type: ignore[attr-defined]
ERASED = "erased"


def person_profiles(session: Session, profile_id: str) -> list[str]:
    """The profile's id and every profile merged into it, transitively (the whole person)."""
    root = get_profile(session, profile_id).id
    found, frontier = [root], [root]
    while frontier:
        merged = list(session.exec(select(Profile.id).where(col(Profile.merged_into).in_(frontier))))
        frontier = [m for m in merged if m not in found]
        found.extend(frontier)
    return found


def export_person(session: Session, profile_id: str) -> dict[str, Any]:
    """Everything held on the person, as JSON-ready data."""
    ids = person_profiles(session, profile_id)
    profile = session.get(Profile, ids[0])
    assert profile is not None
    events = session.exec(select(Event).where(col(Event.profile_id).in_(ids)).order_by(col(Event.timestamp)))
    return {
        "profile": profile.model_dump(mode="json"),
        "merged_profiles": ids[1:],
        "identities": [i.model_dump(mode="json", exclude={"id"}) for i in identities_of(session, ids[0])],
        "consents": [c.model_dump(mode="json", exclude={"id"}) for c in current(session, ids[0])],
        "consent_history": [c.model_dump(mode="json", exclude={"id"}) for c in history(session, ids[0])],
        "merges": [m.model_dump(mode="json") for m in merges_of(session, ids[0])],
        "computed_traits": [
            t.model_dump(mode="json")
            for t in session.exec(select(ComputedTraits).where(col(ComputedTraits.profile_id).in_(ids)))
        ],  # fmt: skip
        "events": [e.model_dump(mode="json") for e in events],
        "segment_memberships": [
            m.model_dump(mode="json", exclude={"id"})
            for m in session.exec(select(SegmentMembership).where(col(SegmentMembership.profile_id).in_(ids)))
        ],
        "internal_events": [
            e.model_dump(mode="json", exclude={"id"})
            for e in session.exec(select(InternalEvent).where(col(InternalEvent.profile_id).in_(ids)))
        ],
        "journey_entries": [
            e.model_dump(mode="json", exclude={"open_key"})
            for e in session.exec(select(JourneyEntry).where(col(JourneyEntry.profile_id).in_(ids)))
        ],
        "journey_visits": [
            v.model_dump(mode="json", exclude={"id"})
            for v in session.exec(select(JourneyVisit).where(col(JourneyVisit.profile_id).in_(ids)))
        ],
        "deliveries": [
            d.model_dump(mode="json")
            for d in session.exec(
                select(Delivery).where(col(Delivery.profile_id).in_(ids)).order_by(col(Delivery.id))
            )
        ],
        "link_clicks": [
            c.model_dump(mode="json", exclude={"id"})
            for c in session.exec(select(LinkClick).where(col(LinkClick.profile_id).in_(ids)))
        ],
    }


@dataclass(frozen=True)
class Erasure:
    """What an erasure removed (counts only: nothing personal is kept to describe it)."""

    profiles: int
    identities: int
    events: int
    consents: int
    sandbox_requests: int


def erase_person(session: Session, profile_id: str) -> Erasure:
    """Delete the person's profiles, identifiers, events, consents, merges and derived data.

    Pending events that carry one of the person's identifiers are deleted too, so nothing recreates
    the profile; a later event from the same device starts a fresh profile. The caller commits.
    """
    ids = person_profiles(session, profile_id)
    identities = list(session.exec(select(Identity).where(col(Identity.profile_id).in_(ids))))
    pairs = {(i.type, i.value) for i in identities}
    values = {i.value for i in identities}

    carried = select(EventIdentity.event_id).where(
        tuple_(col(EventIdentity.type), col(EventIdentity.value)).in_(sorted(pairs))
    )
    by_raw_id = or_(col(Event.user_id).in_(values), col(Event.anonymous_id).in_(values))
    assigned = session.exec(select(Event.id).where(col(Event.profile_id).in_(ids)))
    event_ids: set[int] = {event_id for event_id in assigned if event_id is not None}
    event_ids |= set(session.exec(carried))
    pending = session.exec(select(Event.id).where(col(Event.status) == "pending", by_raw_id))
    event_ids |= {event_id for event_id in pending if event_id is not None}

    def drop(statement: Any) -> int:
        return int(session.exec(statement).rowcount or 0)  # type: ignore[call-overload]

    removed_events = drop(delete(Event).where(col(Event.id).in_(event_ids)))
    drop(delete(EventIdentity).where(col(EventIdentity.event_id).in_(event_ids)))
    consents = drop(delete(ConsentChange).where(col(ConsentChange.profile_id).in_(ids)))
    drop(delete(Consent).where(col(Consent.profile_id).in_(ids)))
    drop(
        delete(MergeRecord).where(
            or_(col(MergeRecord.survivor_id).in_(ids), col(MergeRecord.absorbed_id).in_(ids))
        )
    )
    drop(
        delete(IdentityBlock).where(
            or_(col(IdentityBlock.a_value).in_(values), col(IdentityBlock.b_value).in_(values))
        )
    )
    drop(delete(ComputedTraits).where(col(ComputedTraits.profile_id).in_(ids)))
    drop(delete(SegmentMembership).where(col(SegmentMembership.profile_id).in_(ids)))
    drop(delete(InternalEvent).where(col(InternalEvent.profile_id).in_(ids)))
    drop(delete(JourneyVisit).where(col(JourneyVisit.profile_id).in_(ids)))
    drop(delete(JourneyEntry).where(col(JourneyEntry.profile_id).in_(ids)))
    drop(delete(LinkClick).where(col(LinkClick.profile_id).in_(ids)))
    # Deliveries stay, anonymous, so the reports of past sends keep adding up.
    session.connection().execute(
        update(DELIVERY)
        .where(DELIVERY.c.profile_id.in_(ids))
        .values(profile_id=ERASED, address=None, event=None, links=None, detail=None,
                idempotency_key=sa.literal("erased:") + sa.cast(DELIVERY.c.id, sa.String))
    )  # fmt: skip
    removed_identities = drop(delete(Identity).where(col(Identity.profile_id).in_(ids)))
    sandbox = 0
    for value in values:
        sandbox += drop(delete(SandboxRequest).where(col(SandboxRequest.body).contains(value)))
    removed_profiles = drop(delete(Profile).where(col(Profile.id).in_(ids)))
    return Erasure(removed_profiles, removed_identities, removed_events, consents, sandbox)
