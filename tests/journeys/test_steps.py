"""Each step does what it says: send (queued, or suppressed with its reason), wait a duration or
until a time of day, wait for an event (it comes, or the time runs out), branch on a rule, split
by weight with a hold-out, set a trait, assign an offer, exit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from scipy.stats import chisquare
from sqlmodel import select

from core.ingest.models import Event
from core.internal_events.models import InternalEvent
from core.journeys.definition import DefinitionInvalid
from core.journeys.models import EntryState
from core.journeys.run import Runtime
from core.journeys.steps import next_local
from core.journeys.triggers import enter_by_dates
from core.loyalty.events import OFFER_ASSIGNED
from core.loyalty.offers import OfferIn, archive_offer, coupons_of, create_offer
from core.profiles.models import Profile
from core.segments.jobs import refresh_segments
from core.segments.models import SegmentMembership
from core.segments.service import create_segment
from tests.journeys.conftest import (
    ACTOR,
    TENANT,
    customers,
    definition,
    deliveries,
    entries,
    entry_of,
    identify,
    make_journey,
    path,
    send_step,
    timers,
    track,
)

SIGNED_UP = {"type": "event", "event": "Signed Up"}
EXIT = {"type": "exit"}


def test_a_send_step_queues_a_delivery_or_suppresses_it_with_its_reason(sqlite_shop) -> None:
    shop = sqlite_shop
    (ann,) = customers(shop, "ann")
    (bob,) = customers(shop, "bob", consent=False)
    journey = make_journey(shop, definition(SIGNED_UP, {"s1": send_step("s2"), "s2": EXIT}))
    track(shop, "ann", "Signed Up")
    track(shop, "bob", "Signed Up")

    sent = {d.profile_id: (d.state, d.reason, d.address) for d in deliveries(shop, journey.id)}
    assert sent == {
        ann: ("queued", None, "ann@example.com"),
        bob: ("suppressed", "no_consent", "bob@example.com"),
    }
    assert path(shop, entry_of(shop, journey.id, ann)) == [("s1", "sent"), ("s2", "exit")]
    assert path(shop, entry_of(shop, journey.id, bob)) == [("s1", "suppressed:no_consent"), ("s2", "exit")]
    assert len({d.message_id for d in deliveries(shop, journey.id)}) == 1  # one message per step and version
    assert {e.state for e in entries(shop, journey.id)} == {EntryState.exited}


def test_a_wait_holds_the_entry_until_its_time(shop) -> None:
    (ann,) = customers(shop, "ann")
    spec = definition(SIGNED_UP, {"s1": {"type": "wait", "seconds": 3600, "next": "s2"}, "s2": send_step()})
    journey = make_journey(shop, spec)
    track(shop, "ann", "Signed Up")
    entry = entry_of(shop, journey.id, ann)
    assert (entry.state, entry.step) == (EntryState.waiting, "s1")
    assert entry.due_at is not None and abs((entry.due_at - entry.entered_at).total_seconds() - 3600) < 1

    assert timers(shop, timedelta(minutes=59)) == 0
    assert deliveries(shop, journey.id) == []
    assert timers(shop, timedelta(minutes=61)) == 1
    assert entry_of(shop, journey.id, ann).state == EntryState.completed
    assert path(shop, entry) == [("s1", "waited"), ("s2", "sent")]
    assert len(deliveries(shop, journey.id)) == 1


def test_a_wait_until_a_time_of_day_uses_the_profiles_zone_else_the_tenants(sqlite_shop) -> None:
    shop = sqlite_shop
    (tokyo,) = customers(shop, "ann", timezone="Asia/Tokyo")
    (utc,) = customers(shop, "bob")
    spec = definition(SIGNED_UP, {"s1": {"type": "wait", "until": "09:00", "next": None}})
    journey = make_journey(shop, spec)
    track(shop, "ann", "Signed Up")
    track(shop, "bob", "Signed Up")
    for profile_id, zone in ((tokyo, "Asia/Tokyo"), (utc, "UTC")):
        entry = entry_of(shop, journey.id, profile_id)
        local = entry.due_at.astimezone(ZoneInfo(zone))
        assert (local.hour, local.minute) == (9, 0)
        assert timedelta(0) < entry.due_at - entry.step_at <= timedelta(days=1)
    # The next 09:00, also across a change to summer time.
    paris = ZoneInfo("Europe/Paris")
    assert next_local(datetime(2026, 3, 28, 9, 30, tzinfo=UTC), datetime(2026, 1, 1, 9).time(), paris) == \
        datetime(2026, 3, 29, 9, 0, tzinfo=paris)  # fmt: skip


def test_waiting_for_an_event_goes_on_when_it_comes_or_when_the_time_is_up(shop) -> None:
    ann, bob = customers(shop, "ann", "bob")
    spec = definition({"type": "event", "event": "Cart Abandoned"}, {
        "s1": {"type": "wait_for_event", "event": "Order Completed", "timeout_seconds": 86400,
               "on_event": "thanks", "on_timeout": "remind"},
        "thanks": send_step(body="Thanks"), "remind": send_step(body="Your cart is waiting"),
    })  # fmt: skip
    journey = make_journey(shop, spec)
    track(shop, "ann", "Cart Abandoned")
    track(shop, "bob", "Cart Abandoned")
    assert {e.waiting_event for e in entries(shop, journey.id)} == {"Order Completed"}

    track(shop, "ann", "Order Completed")
    assert path(shop, entry_of(shop, journey.id, ann)) == [("s1", "event"), ("thanks", "sent")]
    assert entry_of(shop, journey.id, bob).state == EntryState.waiting
    assert timers(shop, timedelta(hours=23)) == 0
    assert timers(shop, timedelta(hours=25)) == 1
    assert path(shop, entry_of(shop, journey.id, bob)) == [("s1", "timeout"), ("remind", "sent")]
    assert {(d.profile_id, d.step) for d in deliveries(shop, journey.id)} == {
        (ann, "thanks"),
        (bob, "remind"),
    }


def test_the_triggering_event_does_not_end_a_wait_for_the_same_event(sqlite_shop) -> None:
    shop = sqlite_shop
    (ann,) = customers(shop, "ann")
    spec = definition({"type": "event", "event": "Order Completed"}, {
        "s1": {"type": "wait_for_event", "event": "Order Completed", "timeout_seconds": 600,
               "on_event": "again", "on_timeout": None},
        "again": EXIT,
    })  # fmt: skip
    journey = make_journey(shop, spec)
    track(shop, "ann", "Order Completed", order_id="1")
    entry = entry_of(shop, journey.id, ann)
    assert entry.state == EntryState.waiting
    track(shop, "ann", "Order Completed", order_id="2")
    assert path(shop, entry_of(shop, journey.id, ann))[:2] == [("s1", "event"), ("again", "exit")]


def test_a_branch_decides_by_the_rule_for_the_profile_at_that_moment(sqlite_shop) -> None:
    shop = sqlite_shop
    french, german = customers(shop, "ann", country="FR") + customers(shop, "bob", country="DE")
    spec = definition(SIGNED_UP, {
        "s1": {"type": "branch", "rule": {"all": [{"type": "trait", "key": "country", "op": "=", "value": "FR"},
                                                 {"type": "event", "event": "Signed Up", "op": ">=", "value": 1}]},
               "yes": "fr", "no": None},
        "fr": send_step(body="Bonjour"),
    })  # fmt: skip
    journey = make_journey(shop, spec)
    track(shop, "ann", "Signed Up")
    track(shop, "bob", "Signed Up")
    assert path(shop, entry_of(shop, journey.id, french)) == [("s1", "yes"), ("fr", "sent")]
    assert path(shop, entry_of(shop, journey.id, german)) == [("s1", "no")]
    assert entry_of(shop, journey.id, german).state == EntryState.completed


def test_a_split_follows_its_weights_and_the_holdout_exits(sqlite_shop) -> None:
    shop = sqlite_shop
    users = [f"u{i}" for i in range(2000)]
    customers(shop, *users, birthday="1990-05-05")
    trigger = {"type": "date", "trait": "birthday", "annual": True, "at": "00:00"}
    spec = definition(trigger, {
        "s1": {"type": "split", "branches": [{"weight": 50, "next": "a"}, {"weight": 30, "next": "b"}], "holdout": 20},
        "a": EXIT, "b": EXIT,
    })  # fmt: skip
    journey = make_journey(shop, spec, name="Birthday split")
    enter_by_dates(Runtime.load(TENANT), now=datetime(2026, 5, 5, 12, tzinfo=UTC))

    found = entries(shop, journey.id)
    assert len(found) == 2000
    outcomes = [path(shop, e)[0][1] for e in found]
    observed = [outcomes.count("branch a"), outcomes.count("branch b"), outcomes.count("holdout")]
    assert chisquare(observed, [1000, 600, 400]).pvalue > 0.001, observed
    assert {e.state for e in found if path(shop, e)[0][1] == "holdout"} == {EntryState.holdout}
    assert {e.state for e in found if path(shop, e)[0][1] != "holdout"} == {EntryState.exited}


def test_an_update_trait_step_sets_the_trait_so_segments_see_it(shop) -> None:
    (ann,) = customers(shop, "ann")
    segment = create_segment(
        shop.session, "VIP", {"type": "trait", "key": "vip", "op": "=", "value": True}, ACTOR, {}
    )
    shop.session.commit()
    refresh_segments(TENANT, {"segment_id": segment.id})
    spec = definition(SIGNED_UP, {"s1": {"type": "update_trait", "trait": "vip", "value": True, "next": "s2"},
                                  "s2": {"type": "branch", "rule": {"type": "segment", "segment": segment.id},
                                         "yes": None, "no": "s3"}, "s3": EXIT})  # fmt: skip
    journey = make_journey(shop, spec)
    track(shop, "ann", "Signed Up")

    assert path(shop, entry_of(shop, journey.id, ann)) == [("s1", "updated"), ("s2", "yes")]
    profile = shop.session.get(Profile, ann)
    assert profile.traits["vip"] is True
    member = shop.session.exec(select(SegmentMembership).where(SegmentMembership.profile_id == ann)).all()
    assert [m.segment_id for m in member] == [segment.id]
    # The change is an identify event of the profile: replays keep it, later events may override it.
    (stored,) = shop.session.exec(select(Event).where(Event.source == "journey")).all()
    assert (stored.type, stored.traits, stored.status) == ("identify", {"vip": True}, "processed")
    identify(shop, "ann", vip=False)
    assert shop.session.get(Profile, ann).traits["vip"] is False


def test_an_assign_offer_step_gives_each_profile_one_coupon(shop) -> None:
    (ann,) = customers(shop, "ann")
    offer = create_offer(shop.session, OfferIn(name="Welcome gift", value="a tote bag"), ACTOR)
    shop.session.commit()
    spec = definition(SIGNED_UP, {"s1": {"type": "assign_offer", "offer_id": offer.id, "next": "s2"}, "s2": EXIT},
                      reentry={"mode": "always"})  # fmt: skip
    journey = make_journey(shop, spec)
    track(shop, "ann", "Signed Up")
    track(shop, "ann", "Signed Up")  # a second pass keeps the coupon of the first

    assert [path(shop, e) for e in entries(shop, journey.id)] == [[("s1", "assigned"), ("s2", "exit")]] * 2
    ((coupon, found),) = coupons_of(shop.session, ann)
    assert (found.name, coupon.assigned_by, coupon.uses) == ("Welcome gift", f"journey:{journey.id}", 0)
    assigned = shop.session.exec(select(InternalEvent).where(InternalEvent.name == OFFER_ASSIGNED)).all()
    assert [(e.profile_id, e.properties["code"]) for e in assigned] == [(ann, coupon.code)]

    archive_offer(shop.session, offer.id, ACTOR)  # withdrawn after the journey was activated
    shop.session.commit()
    track(shop, "ann", "Signed Up")
    assert path(shop, entries(shop, journey.id)[-1]) == [("s1", "skipped:offer_archived"), ("s2", "exit")]


def test_an_assign_offer_step_must_name_an_offer_that_is_not_archived(sqlite_shop) -> None:
    shop = sqlite_shop
    withdrawn = create_offer(shop.session, OfferIn(name="Withdrawn"), ACTOR)
    archive_offer(shop.session, withdrawn.id, ACTOR)
    spec = definition(SIGNED_UP, {"s1": {"type": "assign_offer", "offer_id": 999, "next": "s2"},
                                  "s2": {"type": "assign_offer", "offer_id": withdrawn.id}})  # fmt: skip
    with pytest.raises(DefinitionInvalid) as refused:
        make_journey(shop, spec)
    assert dict(refused.value.problems) == {"steps.s1.offer_id": "there is no offer 999",
                                            "steps.s2.offer_id": "offer 'Withdrawn' is archived"}  # fmt: skip


def test_an_exit_step_ends_the_pass(sqlite_shop) -> None:
    shop = sqlite_shop
    (ann,) = customers(shop, "ann")
    journey = make_journey(shop, definition(SIGNED_UP, {"s1": EXIT}))
    track(shop, "ann", "Signed Up")
    entry = entry_of(shop, journey.id, ann)
    assert (entry.state, entry.step, entry.ended_at is not None, entry.open_key) == (
        EntryState.exited,
        None,
        True,
        None,
    )
