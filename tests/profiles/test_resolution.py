"""Accepted events become profiles: identities resolved, merges recorded and reversible, traits by
event time, consents from identify traits, whatever order the events arrive in."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from sqlmodel import Session, select

from core.consent.service import current
from core.db.engines import tenant_engine
from core.identity.graph import Rules
from core.ingest.service import accept
from core.profiles.jobs import PROCESS_EVENTS, identifier_types_for, process_events
from core.profiles.models import MergeRecord, Profile
from core.profiles.resolution import undo_merge
from core.profiles.service import find_by_identifier, get_profile, identities_of, timeline

TENANT = "acme"


def ev(kind: str, n: int, **fields: Any) -> dict[str, Any]:
    """An event at minute ``n`` of a fixed day, with a stable message id."""
    return {"type": kind, "messageId": f"m{n}-{kind}", "timestamp": f"2026-03-01T10:{n:02d}:00Z", **fields}


STORY = [
    ev("track", 1, anonymousId="anon-1", event="Product Viewed", properties={"sku": "A1"}),
    ev(
        "identify",
        2,
        anonymousId="anon-1",
        userId="u-ann",
        traits={"email": " Ann@Example.com ", "name": "Ann"},
    ),
    ev("identify", 3, userId="u-ann", traits={"name": "Ann Lee", "consent": {"email": True}}),
    ev("track", 4, anonymousId="anon-2", event="Order Completed", properties={"total": 30}),
    ev("identify", 5, anonymousId="anon-2", traits={"email": "ann@example.com"}),
    ev("identify", 6, anonymousId="anon-1", userId="u-bob", traits={"name": "Bob"}),
]


def run(installation, events: list[dict[str, Any]]) -> Session:
    tenant = installation.tenant(TENANT).tenant
    session = Session(tenant_engine(tenant.database), expire_on_commit=False)
    for event in events:
        result = accept(session, TENANT, [event])
        assert not result.rejected, result.rejected
    process_events(TENANT, {})
    return session


def partition(session: Session) -> set[frozenset[tuple[str, str]]]:
    profiles = session.exec(select(Profile).where(Profile.merged_into == None)).all()  # noqa: E711
    return {frozenset((i.type, i.value) for i in identities_of(session, p.id)) for p in profiles}


def test_a_visitor_who_logs_in_becomes_one_profile_with_their_history(sqlite_installation) -> None:
    session = run(sqlite_installation, STORY)
    ann = find_by_identifier(session, "user_id", "u-ann")
    assert {("email", "ann@example.com"), ("anonymous_id", "anon-2"), ("user_id", "u-ann")} <= {
        (i.type, i.value) for i in identities_of(session, ann.id)
    }
    assert ann.traits["name"] == "Ann Lee" and ann.display_name == "Ann Lee"
    names = [e.event or e.type for e in timeline(session, ann.id).events]
    assert "Order Completed" in names and "Product Viewed" in names
    bob = find_by_identifier(session, "user_id", "u-bob")
    assert bob.id != ann.id  # a shared anonymous id never merges two known customers
    assert [(c.channel, c.purpose, c.granted) for c in current(session, ann.id)] == [
        ("email", "marketing", True)
    ]
    assert "consent" not in ann.traits


@pytest.mark.parametrize(
    "order", list(itertools.islice(itertools.permutations(range(len(STORY))), 0, 720, 97))
)
def test_the_result_does_not_depend_on_arrival_order(sqlite_installation, order) -> None:
    session = run(sqlite_installation, [STORY[i] for i in order])
    expected = {
        frozenset({("user_id", "u-ann"), ("email", "ann@example.com"), ("anonymous_id", "anon-2"),
                   ("anonymous_id", "anon-1")}),
        frozenset({("user_id", "u-bob")}),
    }  # fmt: skip
    assert partition(session) == expected
    assert find_by_identifier(session, "user_id", "u-ann").traits["name"] == "Ann Lee"


def test_an_admin_undoes_a_merge_and_both_profiles_come_back(installation) -> None:
    events = [
        ev("identify", 1, userId="u-cy", traits={"email": "cy@example.com", "plan": "gold"}),
        ev("identify", 2, anonymousId="anon-9", traits={"phone": "+14155550100", "city": "Lyon"}),
        ev("track", 3, anonymousId="anon-9", event="Visit"),
        ev("identify", 4, anonymousId="anon-9", traits={"email": "cy@example.com"}),
    ]
    session = run(installation, events[:3])
    visitor = find_by_identifier(session, "phone", "+14155550100").id
    known = find_by_identifier(session, "user_id", "u-cy").id
    assert visitor != known
    accept(session, TENANT, [events[3]])
    process_events(TENANT, {})
    session.expire_all()
    assert get_profile(session, visitor).id == known
    merge = session.exec(select(MergeRecord)).one()
    assert (merge.survivor_id, merge.absorbed_id) == (known, visitor)
    assert get_profile(session, known).traits["city"] == "Lyon"

    tenant_types = identifier_types_for({"core"})
    undo_merge(session, merge.id or 0, "admin@acme.test", Rules.from_types(tenant_types))
    session.commit()
    session.expire_all()
    assert get_profile(session, visitor).id == visitor
    assert get_profile(session, visitor).traits == {"phone": "+14155550100", "city": "Lyon"}
    assert "city" not in get_profile(session, known).traits
    assert [e.event for e in timeline(session, visitor, type_="track").events] == ["Visit"]
    assert session.get(MergeRecord, merge.id).undone_by == "admin@acme.test"


def test_the_job_is_registered_as_the_cores(sqlite_installation) -> None:
    from core.plugins import get_host

    assert get_host().jobs[PROCESS_EVENTS].plugin == "core"
