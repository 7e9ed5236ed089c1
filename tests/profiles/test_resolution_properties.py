"""What the profile store holds equals what the pure identity graph says, however the events arrive.

Random event histories are sent in a random arrival order, processed in random slices (so late
events land after later ones were already applied), and the stored profiles are compared with
:func:`core.identity.graph.resolve` run over the whole history at once: the same partition of
identifiers, every event on the profile of its cluster, and traits last-write-wins by event time.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlmodel import Session, select

from core.db.base import TenantModel
from core.db.engines import tenant_engine
from core.identity.graph import Observation, Rules, resolve
from core.ingest.models import Event, EventStatus
from core.ingest.service import accept
from core.profiles.jobs import identifier_types_for, process_events
from core.profiles.models import Identity, Profile

TENANT = "acme"
USERS = ["u1", "u2", "u3", None]
DEVICES = ["a1", "a2", "a3", "a4", None]
EMAILS = ["e1@example.com", "e2@example.com", None]


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[int], list[int]]:
    """Events (each with a user id or an anonymous id), an arrival order, and where processing runs."""
    events = []
    for n in range(draw(st.integers(1, 12))):
        user, device, email = (
            draw(st.sampled_from(USERS)),
            draw(st.sampled_from(DEVICES)),
            draw(st.sampled_from(EMAILS)),
        )
        if user is None and device is None:  # Segment asks for one of the two
            device = "a1"
        event: dict[str, Any] = {
            "type": "identify",
            "messageId": f"m{n}",
            # few distinct minutes, so equal timestamps (ties broken by message id) happen
            "timestamp": f"2026-03-01T10:0{draw(st.integers(0, 4))}:00Z",
            "traits": {"color": draw(st.sampled_from(["red", "blue", "green"]))},
        }
        if email:
            event["traits"]["email"] = email
        if user:
            event["userId"] = user
        if device:
            event["anonymousId"] = device
        events.append(event)
    order = draw(st.permutations(range(len(events))))
    cuts = sorted(draw(st.sets(st.integers(1, len(events)), max_size=3)) | {len(events)})
    return events, list(order), cuts


def expected(events: list[dict[str, Any]]) -> tuple[set[frozenset[tuple[str, str]]], dict, dict]:
    """The graph's partition, each cluster's traits by last write (by member), each event's cluster."""
    observations = {}
    for event in events:
        identifiers = {("user_id", event["userId"])} if "userId" in event else set()
        if "anonymousId" in event:
            identifiers.add(("anonymous_id", event["anonymousId"]))
        if "email" in event["traits"]:
            identifiers.add(("email", event["traits"]["email"]))
        observations[event["messageId"]] = Observation((event["timestamp"], event["messageId"]), identifiers)
    types = identifier_types_for({"core"})
    resolution = resolve(observations.values(), Rules.from_types(types))
    traits: dict[str, dict[str, Any]] = {}
    for event in sorted(events, key=lambda e: (e["timestamp"], e["messageId"])):
        cluster = resolution.assignment[observations[event["messageId"]]]
        traits.setdefault(repr(cluster), {}).update(event["traits"])
    by_member = {}
    for anchor, members in resolution.clusters.items():
        for member in members:
            by_member[repr(member)] = traits.get(repr(anchor), {})
    cluster_of_event = {
        message_id: resolution.clusters[resolution.assignment[observation]]
        for message_id, observation in observations.items()
    }
    return set(resolution.clusters.values()), by_member, cluster_of_event


def clear(database: str) -> None:
    """Empty every tenant table, so each example starts from nothing."""
    with Session(tenant_engine(database)) as session:
        for table in reversed(TenantModel.metadata.sorted_tables):
            session.exec(delete(table))  # type: ignore[call-overload]
        session.commit()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories())
def test_stored_profiles_match_the_graph_whatever_the_arrival(installation, history) -> None:
    events, order, cuts = history
    if "_tenant" not in installation.env:
        installation.env["_tenant"] = installation.tenant(TENANT).tenant.database
    database = installation.env["_tenant"]
    clear(database)
    start = 0
    with Session(tenant_engine(database), expire_on_commit=False) as session:
        for cut in cuts:
            accepted = accept(session, TENANT, [events[i] for i in order[start:cut]])
            assert not accepted.rejected
            process_events(TENANT, {})
            start = cut

        partition, traits, cluster_of_event = expected(events)
        profiles = session.exec(select(Profile).where(Profile.merged_into == None)).all()  # noqa: E711
        identities = session.exec(select(Identity)).all()
        stored = {
            frozenset((i.type, i.value) for i in identities if i.profile_id == profile.id)
            for profile in profiles
        }
        assert stored == partition
        profile_of = {(i.type, i.value): i.profile_id for i in identities}
        for profile in profiles:
            member = next((i.type, i.value) for i in identities if i.profile_id == profile.id)
            assert profile.traits == traits[repr(member)]
        for event in session.exec(select(Event)):
            assert event.status == EventStatus.processed
            members = cluster_of_event[event.message_id]
            assert {profile_of[member] for member in members} == {event.profile_id}
