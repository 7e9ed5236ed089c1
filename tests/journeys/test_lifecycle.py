"""A journey's life: checked when saved, edited as a draft or while paused (entries at a removed
step leave), paused (timers and events wait for it), archived (everyone leaves); and what the
profile's 360 view and privacy requests see of it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.journeys import service
from core.journeys.definition import DefinitionInvalid, parse_definition
from core.journeys.models import EntryState, JourneyStatus
from core.privacy.service import erase_person, export_person
from tests.journeys.conftest import (
    ACTOR,
    CHANNEL,
    customers,
    definition,
    entries,
    entry_of,
    make_journey,
    message,
    path,
    send_step,
    timers,
    track,
)

SIGNED_UP = {"type": "event", "event": "Signed Up"}
EXIT = {"type": "exit"}


def _problems(shop, spec: dict) -> dict[str, str]:
    with pytest.raises(DefinitionInvalid) as refused:
        service.create_journey(
            shop.session, shop.scope(), service.JourneyIn(name="X", definition=spec), ACTOR
        )
    return dict(refused.value.problems)


def test_a_new_journey_starts_from_a_valid_empty_definition(sqlite_shop) -> None:
    shop = sqlite_shop
    parse_definition(service.empty_definition())
    journey = make_journey(shop, service.empty_definition(), activate=False)
    assert (journey.status, journey.version) == (JourneyStatus.draft, 1)


def test_structure_problems_are_listed_with_their_paths(sqlite_shop) -> None:
    problems = _problems(sqlite_shop, definition(SIGNED_UP, start="nowhere", steps={
        "s1": {"type": "send", "channel": CHANNEL, "content": message(), "next": "s2"},
        "s2": {"type": "branch", "rule": {"type": "trait", "key": "x", "op": "is set"}, "yes": "s1", "no": "ghost"},
        "s3": {"type": "wait", "seconds": 0},
        "s4": {"type": "split", "branches": [{"weight": -1, "next": None}]},
        "s5": {"type": "wait", "until": "9am"},
    }))  # fmt: skip
    assert problems == {
        "steps.s3.seconds": "Input should be greater than or equal to 1",
        "steps.s4.branches[0].weight": "Input should be greater than 0",
        "steps.s5.until": "give a time of day as HH:MM (24 hours), e.g. 09:00",
    }
    problems = _problems(sqlite_shop, definition(SIGNED_UP, start="nowhere", steps={
        "s1": send_step("s2"),
        "s2": {"type": "branch", "rule": {"type": "trait", "key": "x", "op": "is set"}, "yes": "s1", "no": "ghost"},
    }))  # fmt: skip
    assert problems == {
        "start": "there is no step 'nowhere'",
        "steps.s2.no": "there is no step 'ghost'",
        "steps.s1": "this loop has no wait: s1 → s2 → s1",
    }
    looping_with_a_wait = definition(
        SIGNED_UP, {"s1": send_step("s2"), "s2": {"type": "wait", "seconds": 60, "next": "s1"}}
    )
    parse_definition(looping_with_a_wait)


def test_channels_content_rules_and_segments_are_checked_for_the_tenant(sqlite_shop) -> None:
    problems = _problems(sqlite_shop, definition({"type": "segment_entered", "segment_id": 99}, {
        "s1": {"type": "send", "channel": "fax", "content": message(), "next": "s2"},
        "s2": send_step("s3", body="Hello\n{{ traits.first_name "),
        "s3": {"type": "send", "channel": CHANNEL, "content": {"variants": {"en": {"subject": "x"}}, "fallback": "en"}},
        "s4": {"type": "branch", "rule": {"type": "trait", "key": "age", "op": "between", "value": 3}},
    }))  # fmt: skip
    assert problems["trigger.segment_id"] == "there is no segment 99"
    assert problems["steps.s1.channel"].startswith("channel 'fax' is not enabled")
    assert problems["steps.s2.content.variants.en.body"].startswith("line 2: ")
    assert "no field 'subject'" in problems["steps.s3.content.variants.en.subject"]
    assert problems["steps.s3.content.variants.en.body"] == "Recording channel needs this field"
    assert any(path.startswith("steps.s4.rule") for path in problems)


def test_an_active_journey_is_paused_to_be_edited_and_entries_at_a_removed_step_leave(sqlite_shop) -> None:
    shop = sqlite_shop
    (ann,) = customers(shop, "ann")
    spec = definition(SIGNED_UP, {"s1": {"type": "wait", "seconds": 60, "next": "s2"}, "s2": send_step()})
    journey = make_journey(shop, spec)
    track(shop, "ann", "Signed Up")
    change = service.JourneyIn(
        name="Welcome", definition=definition(SIGNED_UP, {"s2": send_step()}, start="s2")
    )
    with pytest.raises(service.JourneyRefused, match="pause it"):
        service.update_journey(shop.session, shop.scope(), journey.id or 0, change, ACTOR)

    service.pause(shop.session, journey, ACTOR)
    edited = service.update_journey(shop.session, shop.scope(), journey.id or 0, change, ACTOR)
    shop.session.commit()
    assert edited.version == 2
    entry = entry_of(shop, journey.id, ann)
    assert entry.state == EntryState.exited and path(shop, entry) == [("s1", "exit:step removed")]


def test_a_paused_journey_holds_its_timers_and_events_until_it_is_active_again(sqlite_shop) -> None:
    shop = sqlite_shop
    ann, bob = customers(shop, "ann", "bob")
    spec = definition(SIGNED_UP, {
        "s1": {"type": "wait_for_event", "event": "Order Completed", "timeout_seconds": 60,
               "on_event": "thanks", "on_timeout": None},
        "thanks": send_step(),
    })  # fmt: skip
    journey = make_journey(shop, spec)
    track(shop, "ann", "Signed Up")
    track(shop, "bob", "Signed Up")
    service.pause(shop.session, journey, ACTOR)
    shop.session.commit()

    track(shop, "ann", "Order Completed")
    assert timers(shop, timedelta(minutes=5)) == 0
    assert {e.state for e in entries(shop, journey.id)} == {EntryState.waiting}

    service.activate(shop.session, shop.tenant, shop.scope(), journey, ACTOR)
    shop.session.commit()
    assert timers(shop, timedelta(minutes=5)) == 2
    assert path(shop, entry_of(shop, journey.id, ann)) == [("s1", "event"), ("thanks", "sent")]
    assert path(shop, entry_of(shop, journey.id, bob)) == [("s1", "timeout")]


def test_archiving_ends_every_pass(sqlite_shop) -> None:
    shop = sqlite_shop
    (ann,) = customers(shop, "ann")
    journey = make_journey(shop, definition(SIGNED_UP, {"s1": {"type": "wait", "seconds": 60, "next": None}}))
    track(shop, "ann", "Signed Up")
    service.archive(shop.session, journey, ACTOR)
    shop.session.commit()
    entry = entry_of(shop, journey.id, ann)
    assert entry.state == EntryState.exited and path(shop, entry) == [("s1", "exit:archived")]
    with pytest.raises(service.JourneyRefused):
        service.activate(shop.session, shop.tenant, shop.scope(), journey, ACTOR)


def test_counts_summary_paths_and_privacy(sqlite_shop) -> None:
    shop = sqlite_shop
    ann, bob = customers(shop, "ann", "bob")
    spec = definition(SIGNED_UP, {"s1": send_step("s2"), "s2": {"type": "wait", "seconds": 60, "next": "s3"},
                                  "s3": EXIT})  # fmt: skip
    journey = make_journey(shop, spec)
    track(shop, "ann", "Signed Up")
    track(shop, "bob", "Signed Up")
    counts = service.step_counts(shop.session, journey.id or 0)
    assert {k: (c.entered, c.here_now) for k, c in counts.items()} == {
        "s1": (2, 0),
        "s2": (2, 2),
        "s3": (0, 0),
    }

    (found,) = service.paths_of(shop.session, ann)
    assert found.journey.id == journey.id and [v.step for v in found.visits] == ["s1", "s2"]

    exported = export_person(shop.session, ann)
    assert [e["journey_id"] for e in exported["journey_entries"]] == [journey.id]
    assert [v["outcome"] for v in exported["journey_visits"]] == ["sent", "waiting"]
    erase_person(shop.session, ann)
    shop.session.commit()
    assert service.paths_of(shop.session, ann) == []
    assert [e.profile_id for e in entries(shop, journey.id)] == [bob]
