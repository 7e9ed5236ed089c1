"""The goal ends a pass as converted and counts for its messages; the re-entry policy decides who
may enter again: never, after leaving, always, and not within a cooldown."""

from __future__ import annotations

from datetime import timedelta

from core.journeys import service
from core.journeys.models import EntryState
from core.reporting.report import report
from tests.journeys.conftest import (
    ACTOR,
    customers,
    definition,
    deliveries,
    entries,
    entry_of,
    make_journey,
    path,
    send_step,
    timers,
    track,
)

SIGNED_UP = {"type": "event", "event": "Signed Up"}
NURTURE = {
    "s1": send_step("s2", body="Welcome"),
    "s2": {"type": "wait", "seconds": 86400, "next": "s3"},
    "s3": send_step(None, body="Still there?"),
}
GOAL = {"event": "Order Completed", "within_days": 14}


def test_the_goal_ends_the_pass_converted_and_marks_its_sent_messages(shop) -> None:
    ann, bob = customers(shop, "ann", "bob")
    journey = make_journey(shop, definition(SIGNED_UP, NURTURE, goal=GOAL))
    track(shop, "ann", "Signed Up")
    track(shop, "bob", "Signed Up")
    shop.run_jobs()  # the send jobs deliver the welcome messages to the provider
    assert {d.state for d in deliveries(shop, journey.id)} == {"sent"}

    track(shop, "ann", "Order Completed", revenue=30)

    entry = entry_of(shop, journey.id, ann)
    assert (entry.state, entry.step, entry.converted_at is not None) == (EntryState.converted, None, True)
    assert path(shop, entry) == [("s1", "sent"), ("s2", "goal")]
    converted = {d.profile_id: d.converted_at is not None for d in deliveries(shop, journey.id)}
    assert converted == {ann: True, bob: False}
    assert timers(shop, timedelta(days=2)) == 1  # only bob's wait is left
    assert {(d.profile_id, d.step) for d in deliveries(shop, journey.id)} == {
        (ann, "s1"),
        (bob, "s1"),
        (bob, "s3"),
    }
    assert report(shop.session, journey_id=journey.id).converted == 1
    assert service.journey_summary(shop.session, journey.id or 0) == {
        "entered": 2, "active": 0, "completed": 1, "exited": 0, "converted": 1, "holdout": 0}  # fmt: skip


def test_the_triggering_event_is_not_its_own_goal_and_holdouts_still_convert(sqlite_shop) -> None:
    shop = sqlite_shop
    (ann,) = customers(shop, "ann")
    spec = definition({"type": "event", "event": "Order Completed"}, {
        "s1": {"type": "split", "branches": [{"weight": 0.000001, "next": None}], "holdout": 1_000_000},
    }, goal={"event": "Order Completed", "within_days": 30})  # fmt: skip
    journey = make_journey(shop, spec, name="Second order")
    track(shop, "ann", "Order Completed", order_id="1")
    entry = entry_of(shop, journey.id, ann)
    assert (entry.state, entry.converted_at) == (EntryState.holdout, None)
    track(shop, "ann", "Order Completed", order_id="2")
    entry = entry_of(shop, journey.id, ann)
    assert entry.state == EntryState.holdout and entry.converted_at is not None
    summary = service.journey_summary(shop.session, journey.id or 0)
    assert (summary["holdout"], summary["converted"]) == (1, 1)


def _entered_twice(shop, mode: str, cooldown: int = 0, name: str = "J") -> list[EntryState]:
    spec = definition(SIGNED_UP, NURTURE, reentry={"mode": mode, "cooldown_hours": cooldown})
    journey = make_journey(shop, spec, name=name)
    track(shop, "ann", "Signed Up")
    track(shop, "ann", "Signed Up")  # while the first pass waits
    states = [e.state for e in entries(shop, journey.id)]
    service.pause(shop.session, journey, ACTOR)
    shop.session.commit()
    return states


def test_reentry_never_after_exit_always_and_cooldown(sqlite_shop) -> None:
    shop = sqlite_shop
    customers(shop, "ann")
    assert _entered_twice(shop, "never", name="never") == [EntryState.waiting]
    assert _entered_twice(shop, "after_exit", name="after exit") == [EntryState.waiting]
    assert _entered_twice(shop, "always", name="always") == [EntryState.waiting, EntryState.waiting]
    assert _entered_twice(shop, "always", cooldown=24, name="cooldown") == [EntryState.waiting]


def test_after_exit_lets_a_profile_in_again_once_its_pass_ended_but_never_does_not(sqlite_shop) -> None:
    shop = sqlite_shop
    customers(shop, "ann")
    short = {"s1": send_step(None)}
    again = make_journey(shop, definition(SIGNED_UP, short, reentry={"mode": "after_exit"}), name="again")
    once = make_journey(shop, definition(SIGNED_UP, short, reentry={"mode": "never"}), name="once")
    track(shop, "ann", "Signed Up")
    track(shop, "ann", "Signed Up")
    assert [e.state for e in entries(shop, again.id)] == [EntryState.completed, EntryState.completed]
    assert [e.state for e in entries(shop, once.id)] == [EntryState.completed]
    assert len(deliveries(shop, again.id)) == 2 and len(deliveries(shop, once.id)) == 1
