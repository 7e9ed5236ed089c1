"""Each trigger enters the right profiles, once, with its data: an event, entering or leaving a
segment, a date trait (a birthday each year, an expiry date once), and a call of the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.journeys import service
from core.journeys.models import EntryState
from core.journeys.run import Runtime
from core.journeys.triggers import enter_by_dates
from core.loyalty.models import EarningRule, LoyaltyProgram, RuleStatus, Tier
from core.profiles.service import ProfileNotFound
from core.segments.jobs import refresh_segments
from core.segments.service import create_segment
from tests.journeys.conftest import (
    ACTOR,
    TENANT,
    customers,
    definition,
    deliveries,
    entries,
    identify,
    make_journey,
    path,
    send_step,
    track,
)

EXIT = {"type": "exit"}


def test_an_event_enters_its_profile_and_the_message_reads_the_event(shop) -> None:
    ann, bob = shop.customers(2)
    track(shop, "c0", "Signed Up", plan="silver")  # before the journey exists: never enters
    spec = definition(
        {"type": "event", "event": "Signed Up"}, {"s1": send_step(body="Welcome to {{ event.plan }}")}
    )
    journey = make_journey(shop, spec)

    track(shop, "c0", "Signed Up", plan="gold")
    track(shop, "c1", "Page Viewed")
    track(shop, "c1", "Signed Up", at=datetime.now(UTC) - timedelta(days=30))  # a backfill: not now

    (entry,) = entries(shop, journey.id)
    assert (entry.profile_id, entry.state, entry.data) == (ann, EntryState.completed, {"plan": "gold"})
    assert path(shop, entry) == [("s1", "sent")]
    (delivery,) = deliveries(shop, journey.id)
    assert (delivery.profile_id, delivery.state, delivery.event) == (ann, "queued", {"plan": "gold"})
    assert (delivery.step, delivery.entry_id, delivery.idempotency_key) == (
        "s1", entry.id, f"journey:{journey.id}:{entry.id}:s1:1")  # fmt: skip
    assert bob not in {e.profile_id for e in entries(shop, journey.id)}


def _vip_segment(shop) -> int:
    segment = create_segment(
        shop.session, "VIP", {"type": "trait", "key": "vip", "op": "=", "value": True}, ACTOR, {}
    )
    shop.session.commit()
    refresh_segments(TENANT, {"segment_id": segment.id})
    assert segment.id is not None
    return segment.id


def test_entering_and_leaving_a_segment_enter_their_journeys(shop) -> None:
    ann, bob = shop.customers(2)
    segment = _vip_segment(shop)
    entered = make_journey(shop, definition({"type": "segment_entered", "segment_id": segment}, {"s1": EXIT}),
                           name="Welcome VIP")  # fmt: skip
    exited = make_journey(shop, definition({"type": "segment_exited", "segment_id": segment}, {"s1": EXIT}),
                          name="Win back VIP")  # fmt: skip

    identify(shop, "c0", vip=True)
    assert [(e.profile_id, e.data["segment"]) for e in entries(shop, entered.id)] == [(ann, "VIP")]
    assert entries(shop, exited.id) == []

    identify(shop, "c0", vip=False)
    assert [e.profile_id for e in entries(shop, exited.id)] == [ann]
    assert [e.profile_id for e in entries(shop, entered.id)] == [ann]  # once: entry, not membership
    assert bob not in {e.profile_id for e in entries(shop, entered.id) + entries(shop, exited.id)}


def test_birthdays_enter_on_their_day_once_the_hour_has_come_and_only_once(sqlite_shop) -> None:
    shop = sqlite_shop
    today = customers(shop, "ann", birthday="1990-06-15")
    soon = customers(shop, "bob", birthday="1985-06-18")
    customers(shop, "cat", birthday="1990-07-15")
    leap = customers(shop, "dan", birthday="2000-02-29")
    trigger = {"type": "date", "trait": "birthday", "annual": True, "days_before": 0, "at": "09:00"}
    journey = make_journey(shop, definition(trigger, {"s1": EXIT}), name="Birthday")
    ahead = make_journey(shop, definition({**trigger, "days_before": 3}, {"s1": EXIT}), name="Birthday soon")
    runtime = Runtime.load(TENANT)

    assert enter_by_dates(runtime, now=datetime(2026, 6, 15, 8, 59, tzinfo=UTC)) == 0  # before 09:00
    assert enter_by_dates(runtime, now=datetime(2026, 6, 15, 9, 30, tzinfo=UTC)) == 2  # one per journey
    assert enter_by_dates(runtime, now=datetime(2026, 6, 15, 10, 30, tzinfo=UTC)) == 0  # an hour later: once
    assert [e.profile_id for e in entries(shop, journey.id)] == today
    assert entries(shop, journey.id)[0].data == {"date": "2026-06-15", "birthday": "1990-06-15"}
    assert [e.profile_id for e in entries(shop, ahead.id)] == soon

    enter_by_dates(runtime, now=datetime(2027, 2, 28, 12, 0, tzinfo=UTC))  # no 29 February in 2027
    assert leap[0] in {e.profile_id for e in entries(shop, journey.id)}


def test_an_exact_date_enters_on_that_day_only(sqlite_shop) -> None:
    shop = sqlite_shop
    expiring = customers(shop, "ann", pass_expiry="2026-09-01T00:00:00Z")
    trigger = {"type": "date", "trait": "pass_expiry", "annual": False, "days_before": 7, "at": "10:00"}
    journey = make_journey(shop, definition(trigger, {"s1": EXIT}), name="Renew")
    runtime = Runtime.load(TENANT)
    enter_by_dates(runtime, now=datetime(2025, 8, 25, 11, 0, tzinfo=UTC))  # a year too early
    assert entries(shop, journey.id) == []
    enter_by_dates(runtime, now=datetime(2026, 8, 25, 11, 0, tzinfo=UTC))
    assert [e.profile_id for e in entries(shop, journey.id)] == expiring


def test_the_api_enters_a_profile_with_its_data_into_an_active_api_journey(sqlite_shop) -> None:
    shop = sqlite_shop
    (ann,) = shop.customers(1)
    spec = definition({"type": "api"}, {"s1": send_step(body="Your code is {{ event.code }}")})
    journey = make_journey(shop, spec, name="Codes")
    entry = service.enter(shop.session, shop.tenant, shop.scope(), journey, ann, {"code": "X1"})
    shop.session.commit()
    assert entry is not None and entry.state == EntryState.completed
    assert [d.event for d in deliveries(shop, journey.id)] == [{"code": "X1"}]

    with pytest.raises(ProfileNotFound):
        service.enter(shop.session, shop.tenant, shop.scope(), journey, "p_nobody", {})
    other = make_journey(shop, definition({"type": "event", "event": "X"}, {"s1": EXIT}), name="Not by API")
    with pytest.raises(service.JourneyRefused, match="not entered through the API"):
        service.enter(shop.session, shop.tenant, shop.scope(), other, ann, {})
    service.pause(shop.session, journey, ACTOR)
    with pytest.raises(service.JourneyRefused, match="paused"):
        service.enter(shop.session, shop.tenant, shop.scope(), journey, ann, {})


def test_a_paused_journey_lets_nobody_in_and_events_meanwhile_do_not_enter_later(sqlite_shop) -> None:
    shop = sqlite_shop
    shop.customers(2)
    journey = make_journey(shop, definition({"type": "event", "event": "Signed Up"}, {"s1": EXIT}))
    service.pause(shop.session, journey, ACTOR)
    shop.session.commit()
    track(shop, "c0", "Signed Up")
    service.activate(shop.session, shop.tenant, shop.scope(), journey, ACTOR)
    shop.session.commit()
    track(shop, "c0", "Page Viewed")  # the follower runs again: the paused-time event stays out
    assert entries(shop, journey.id) == []
    track(shop, "c1", "Signed Up", at=datetime.now(UTC) - timedelta(minutes=5))  # stored after: it counts
    assert len(entries(shop, journey.id)) == 1


def test_an_event_trigger_may_name_a_loyalty_event(shop) -> None:
    [ann] = shop.customers(1)
    program = LoyaltyProgram(key="club", name="Club")
    shop.session.add(program)
    shop.session.flush()
    assert program.id is not None
    shop.session.add_all([
        Tier(program_id=program.id, name="Gold", threshold=100),
        EarningRule(program_id=program.id, name="Base", event="Order Completed", points=150,
                    status=RuleStatus.active, activated_at=datetime.now(UTC) - timedelta(days=1)),
    ])  # fmt: skip
    shop.session.commit()
    spec = definition(
        {"type": "event", "event": "Loyalty Tier Changed"},
        {"s1": send_step(body="Welcome to {{ event.to }}")},
    )
    journey = make_journey(shop, spec)

    track(shop, "c0", "Order Completed", order_id="o1")
    shop.run_jobs()  # loyalty applies the order (Gold), then the journey follows the tier change

    assert [e.profile_id for e in entries(shop, journey.id)] == [ann]
    assert len(deliveries(shop, journey.id)) == 1
    assert [m.body for m in shop.provider.messages] == ["Welcome to Gold"]


def test_the_first_events_a_new_tenant_ever_processes_still_enter_an_active_journey(shop) -> None:
    # Nothing was processed before the journey was activated: the stream's followers start with it.
    journey = make_journey(shop, definition({"type": "event", "event": "Signed Up"}, {"s1": EXIT}))
    track(shop, "c0", "Signed Up")
    (entry,) = entries(shop, journey.id)
    assert entry.state == EntryState.exited  # entered, and went through to the exit
