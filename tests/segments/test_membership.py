"""Memberships follow the customers: entry and exit in real time after events, and in batch.

Events go through the real ingestion and processing; each entry and exit is kept with its time and
emitted as an internal event journeys can start on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from core.db.engines import tenant_engine
from core.ingest.service import accept
from core.internal_events.models import InternalEvent
from core.internal_events.service import since
from core.profiles.jobs import process_events
from core.profiles.service import find_by_identifier
from core.queue.actors import execute_job
from core.queue.outbox import add_job
from core.segments.clock import Clock
from core.segments.jobs import REFRESH_SEGMENTS, refresh_segments
from core.segments.membership import refresh_all
from core.segments.models import Segment, SegmentMembership
from core.segments.service import (
    SegmentConflict,
    archive_segment,
    create_segment,
    members,
    memberships_of,
    size_history,
    update_segment,
)

TENANT = "shop"
NOW = datetime.now(UTC)
FRENCH = {"type": "trait", "key": "country", "op": "=", "value": "FR"}
BUYERS = {"type": "event", "event": "Order Completed", "op": ">=", "value": 1, "window": {"last_days": 30}}


@pytest.fixture
def shop(installation) -> Session:
    database = installation.tenant(TENANT).tenant.database
    with Session(tenant_engine(database), expire_on_commit=False) as session:
        yield session


def send(session: Session, *events: dict) -> None:
    result = accept(session, TENANT, list(events))
    assert not result.rejected, result.rejected
    process_events(TENANT, {})
    session.expire_all()


def identify(user: str, **traits) -> dict:
    return {
        "type": "identify",
        "userId": user,
        "traits": traits,
        "messageId": f"id-{user}-{sorted(traits.items())}",
    }


def bought(user: str, order: str, days_ago: float = 0) -> dict:
    at = (NOW - timedelta(days=days_ago)).isoformat()
    return {"type": "track", "userId": user, "event": "Order Completed", "timestamp": at, "messageId": f"o-{order}",
            "properties": {"order_id": order, "revenue": 20.0}}  # fmt: skip


def profile_of(session: Session, user: str) -> str:
    return find_by_identifier(session, "user_id", user).id


def current(session: Session, segment: Segment) -> set[str]:
    rows, _ = members(session, segment.id)
    return {row.profile_id for row in rows}


def new_segment(session: Session, name: str, rule: dict) -> Segment:
    segment = create_segment(session, name, rule, "marketer@shop.test", {})
    session.commit()
    refresh_segments(TENANT, {"segment_id": segment.id})
    session.expire_all()
    return session.get(Segment, segment.id)


def test_a_new_segment_is_evaluated_in_batch_and_its_first_members_are_marked_initial(shop: Session) -> None:
    send(shop, identify("ann", country="FR"), identify("bob", country="DE"))
    segment = new_segment(shop, "French", FRENCH)
    ann = profile_of(shop, "ann")
    assert current(shop, segment) == {ann}
    assert segment.size == 1 and segment.counted_at is not None
    entered = shop.exec(select(InternalEvent)).all()
    assert [(e.name, e.profile_id, e.properties["initial"]) for e in entered] == [
        ("Segment Entered", ann, True)
    ]
    assert [size for _, size in size_history(shop, segment.id)] == [1]


def test_profiles_enter_and_leave_in_real_time_as_their_traits_change(shop: Session) -> None:
    send(shop, identify("ann", country="DE"))
    segment = new_segment(shop, "French", FRENCH)
    assert current(shop, segment) == set()
    cursor = max([e.id for e in shop.exec(select(InternalEvent))] or [0])

    send(shop, identify("ann", country="FR"))
    ann = profile_of(shop, "ann")
    assert current(shop, segment) == {ann}
    send(shop, identify("ann", country="ES"))
    assert current(shop, segment) == set()

    stream = since(shop, cursor)
    assert [(e.name, e.properties["segment"], e.properties["source"]) for e in stream] == [
        ("Segment Entered", "French", "realtime"), ("Segment Exited", "French", "realtime")]  # fmt: skip
    stays = shop.exec(select(SegmentMembership).where(SegmentMembership.profile_id == ann)).all()
    assert len(stays) == 1 and stays[0].exited_at is not None and stays[0].entered_at <= stays[0].exited_at


def test_a_purchase_brings_a_buyer_in_at_once_and_time_takes_them_out_in_batch(shop: Session) -> None:
    send(shop, identify("ann", country="FR"))
    segment = new_segment(shop, "Recent French buyers", {"all": [FRENCH, BUYERS]})
    send(shop, bought("ann", "A1", days_ago=29.9))
    ann = profile_of(shop, "ann")
    assert current(shop, segment) == {ann}
    assert [s.name for s, _ in memberships_of(shop, ann)] == ["Recent French buyers"]

    # A day later the order falls out of the 30-day window: only the batch evaluation can see that.
    refresh_all(shop, Clock.at("UTC", NOW + timedelta(days=1)), {})
    shop.commit()
    assert current(shop, segment) == set()
    assert shop.get(Segment, segment.id).size == 0


def test_membership_of_another_segment_follows_that_segments_rule(shop: Session) -> None:
    send(shop, identify("ann", country="FR", plan="pro"), identify("bob", country="FR", plan="free"))
    french = new_segment(shop, "French", FRENCH)
    pros = new_segment(shop, "French pros", {"all": [{"type": "segment", "segment": french.id},
                                                     {"type": "trait", "key": "plan", "op": "=", "value": "pro"}]})  # fmt: skip
    assert current(shop, pros) == {profile_of(shop, "ann")}
    with pytest.raises(SegmentConflict, match="used by: French pros"):
        archive_segment(shop, french.id, "marketer@shop.test")
    shop.rollback()
    # Changing the referenced segment changes who is in the one that uses it, at the next evaluation.
    update_segment(
        shop,
        french.id,
        "marketer@shop.test",
        {},
        rule={"type": "trait", "key": "country", "op": "=", "value": "DE"},
    )
    shop.commit()
    refresh_segments(TENANT, {})
    shop.expire_all()
    assert current(shop, pros) == set()


def test_an_archived_segment_lets_its_members_go_and_is_no_longer_evaluated(shop: Session) -> None:
    send(shop, identify("ann", country="FR"))
    segment = new_segment(shop, "French", FRENCH)
    archive_segment(shop, segment.id, "marketer@shop.test")
    shop.commit()
    send(shop, identify("zoe", country="FR"))
    assert current(shop, segment) == set()
    exits = [e for e in since(shop, 0) if e.name == "Segment Exited"]
    assert [e.properties["source"] for e in exits] == ["archived"]


def test_the_hourly_evaluation_is_a_durable_job(shop: Session) -> None:
    send(shop, identify("ann", country="FR"))
    segment = create_segment(shop, "French", FRENCH, "marketer@shop.test", {})
    job = add_job(shop, TENANT, REFRESH_SEGMENTS, {"segment_id": segment.id})
    shop.commit()
    execute_job(TENANT, job.id)
    shop.expire_all()
    assert current(shop, segment) == {profile_of(shop, "ann")}


def test_when_two_profiles_merge_the_absorbed_one_leaves_its_segments(shop: Session) -> None:
    send(shop, {"type": "identify", "anonymousId": "device-1", "traits": {"country": "FR"}, "messageId": "a1"},
         identify("ann", country="FR"))  # fmt: skip
    segment = new_segment(shop, "French", FRENCH)
    assert len(current(shop, segment)) == 2
    send(shop, {"type": "identify", "anonymousId": "device-1", "userId": "ann", "messageId": "link"})
    assert current(shop, segment) == {profile_of(shop, "ann")}
    exited = [e for e in since(shop, 0) if e.name == "Segment Exited"]
    assert len(exited) == 1 and exited[0].profile_id != profile_of(shop, "ann")
