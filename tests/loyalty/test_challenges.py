"""Challenges and badges: what counts (window, distinct values, filters, activation, status), what
completing awards (badge, points, an internal event), once, however often the events are applied."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlmodel import Session, col, select

from core.db.engines import tenant_engine
from core.ingest.models import Event
from core.ingest.service import accept
from core.internal_events.models import InternalEvent
from core.loyalty import challenges as c
from core.loyalty.events import BADGE_EARNED
from core.loyalty.ledger import LedgerEntry, LoyaltyError, lock_members
from core.loyalty.models import ChallengeGoal, ChallengeProgress, LoyaltyMember, LoyaltyProgram, RuleStatus
from core.loyalty.programs import ProgramIn, create_program
from core.loyalty.state import EventRow
from core.profiles.jobs import process_events
from core.profiles.service import find_by_identifier
from tests.support import run_due_jobs

TENANT = "shop"
NOW = datetime.now(UTC).replace(microsecond=0)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


@dataclass
class Shop:
    """A tenant with one loyalty program, and ways to send it processed events."""

    session: Session
    program: LoyaltyProgram
    database: str

    def track(self, user: str, event: str, at: datetime, **properties: Any) -> EventRow:
        """A track event of ``user``, stored and processed for real; as the loyalty engine reads it."""
        message_id = uuid.uuid4().hex
        item = {"type": "track", "userId": user, "event": event, "properties": properties,
                "timestamp": at.isoformat(), "messageId": message_id}  # fmt: skip
        assert not accept(self.session, TENANT, [item]).rejected
        process_events(TENANT, {})
        self.session.expire_all()
        stored = self.session.exec(select(Event).where(Event.message_id == message_id)).one()
        assert stored.id is not None and stored.event is not None and stored.profile_id is not None
        return EventRow(stored.id, stored.message_id, stored.event, stored.profile_id, stored.properties,
                        stored.timestamp)  # fmt: skip

    def profile(self, user: str) -> str:
        return find_by_identifier(self.session, "user_id", user).id

    def apply(self, rows: list[EventRow]) -> None:
        """What the loyalty engine does with a batch: lock the members, count the challenges, commit."""
        assert self.program.id is not None
        members = lock_members(self.session, self.program, {row.profile_id for row in rows})
        c.on_events(self.session, self.program, rows, members, datetime.now(UTC))
        self.session.commit()

    def challenge(self, activated: datetime | None = None, **fields: Any) -> int:
        """A challenge, activated at ``activated`` (None: left a draft)."""
        assert self.program.id is not None
        spec = {"name": "Regular", "badge": "Regular", "event": "Order Completed", **fields}
        challenge = c.create_challenge(self.session, self.program.id, c.ChallengeIn(**spec))
        assert challenge.id is not None
        if activated is not None:
            c.activate_challenge(self.session, self.program.id, challenge.id, now=activated)
        self.session.commit()
        return challenge.id

    def progress(self, challenge_id: int, profile_id: str) -> ChallengeProgress | None:
        self.session.expire_all()
        return self.session.get(ChallengeProgress, (challenge_id, profile_id))

    def balance(self, profile_id: str) -> int:
        self.session.expire_all()
        member = self.session.get(LoyaltyMember, (self.program.id, profile_id))
        return member.balance if member else 0

    def badge_events(self) -> list[InternalEvent]:
        query = (
            select(InternalEvent).where(InternalEvent.name == BADGE_EARNED).order_by(col(InternalEvent.id))
        )
        return list(self.session.exec(query))

    def ledger(self) -> list[LedgerEntry]:
        return list(self.session.exec(select(LedgerEntry).order_by(col(LedgerEntry.id))))


@pytest.fixture
def shop(installation: Any) -> Iterator[Shop]:
    created = installation.tenant(TENANT)
    with Session(tenant_engine(created.tenant.database), expire_on_commit=False) as session:
        program = create_program(session, ProgramIn(key="club", name="Club"), "test")
        session.commit()
        yield Shop(session, program, created.tenant.database)


def test_three_purchases_in_30_days_complete_only_within_the_window_and_award_once(shop: Shop) -> None:
    challenge_id = shop.challenge(activated=days_ago(90), target=3, window_days=30, points=50,
                                  name="Three in a month", badge="Regular")  # fmt: skip
    old = shop.track("ann", "Order Completed", days_ago(45))
    recent = [
        shop.track("ann", "Order Completed", days_ago(20)),
        shop.track("ann", "Order Completed", days_ago(10)),
    ]
    ann = shop.profile("ann")

    shop.apply([old, *recent])

    progress = shop.progress(challenge_id, ann)
    assert progress is not None and (progress.progress, progress.target, progress.completed_at) == (
        2,
        3,
        None,
    )
    assert shop.balance(ann) == 0 and shop.badge_events() == []

    third = shop.track("ann", "Order Completed", days_ago(1))
    shop.apply([third])

    progress = shop.progress(challenge_id, ann)
    assert progress is not None and progress.progress == 3 and progress.completed_at == third.timestamp
    assert shop.balance(ann) == 50
    (entry,) = shop.ledger()
    assert (entry.kind, entry.key, entry.reason) == ("challenge", f"challenge:{challenge_id}:{ann}",
                                                     "Challenge: Three in a month")  # fmt: skip
    (event,) = shop.badge_events()
    assert event.profile_id == ann
    assert event.properties == {"program": "club", "program_id": shop.program.id, "challenge_id": challenge_id,
                                "badge": "Regular", "name": "Three in a month", "points": 50}  # fmt: skip
    assert c.badges_of(shop.session, shop.program.id or 0, ann) == ["Regular"]

    updated_at = progress.updated_at
    shop.apply([old, *recent, third])  # the engine reads rows again after a crash: nothing changes
    shop.apply([shop.track("ann", "Order Completed", days_ago(0.5))])  # nor does a fourth purchase

    again = shop.progress(challenge_id, ann)
    assert again is not None and (again.progress, again.updated_at) == (3, updated_at)
    assert shop.balance(ann) == 50 and len(shop.ledger()) == 1 and len(shop.badge_events()) == 1


def test_the_window_moves_with_each_event(shop: Shop) -> None:
    challenge_id = shop.challenge(activated=days_ago(200), target=3, window_days=30)
    rows = [shop.track("bob", "Order Completed", days_ago(d)) for d in (100, 80, 60, 40)]
    bob = shop.profile("bob")

    shop.apply(rows)

    progress = shop.progress(challenge_id, bob)
    assert progress is not None and progress.progress == 2 and progress.completed_at is None


def test_trying_two_services_counts_distinct_values(shop: Shop) -> None:
    challenge_id = shop.challenge(activated=days_ago(30), name="Explorer", badge="Explorer",
                                  event="Service Booked", goal="distinct", property="service", target=2,
                                  points=20)  # fmt: skip
    first = [shop.track("cat", "Service Booked", days_ago(5), service="massage"),
             shop.track("cat", "Service Booked", days_ago(4), service="massage"),
             shop.track("cat", "Service Booked", days_ago(3))]  # fmt: skip
    cat = shop.profile("cat")

    shop.apply(first)

    progress = shop.progress(challenge_id, cat)
    assert progress is not None and (progress.progress, progress.seen, progress.completed_at) == (
        1,
        ["massage"],
        None,
    )

    shop.apply([shop.track("cat", "Service Booked", days_ago(2), service="facial")])

    progress = shop.progress(challenge_id, cat)
    assert progress is not None and progress.progress == 2 and progress.seen == ["massage", "facial"]
    assert progress.completed_at is not None and shop.balance(cat) == 20
    assert c.badges_of(shop.session, shop.program.id or 0, cat) == ["Explorer"]


def test_only_events_passing_the_filters_count(shop: Shop) -> None:
    where = [{"key": "revenue", "op": ">=", "value": 50}, {"key": "channel", "op": "=", "value": "store"}]
    challenge_id = shop.challenge(activated=days_ago(10), target=2, where=where, points=5)
    rows = [shop.track("dan", "Order Completed", days_ago(5), revenue=80, channel="store"),
            shop.track("dan", "Order Completed", days_ago(4), revenue=20, channel="store"),
            shop.track("dan", "Order Completed", days_ago(3), revenue=90, channel="web")]  # fmt: skip
    dan = shop.profile("dan")

    shop.apply(rows)

    progress = shop.progress(challenge_id, dan)
    assert progress is not None and progress.progress == 1 and shop.balance(dan) == 0

    shop.apply([shop.track("dan", "Order Completed", days_ago(1), revenue=50, channel="store")])

    assert shop.balance(dan) == 5


def test_draft_and_ended_challenges_count_nothing(shop: Shop) -> None:
    assert shop.program.id is not None
    draft_id = shop.challenge(name="Draft", target=1, points=10)
    ended_id = shop.challenge(activated=days_ago(30), name="Ended", target=1, points=10)
    c.end_challenge(shop.session, shop.program.id, ended_id)
    shop.session.commit()

    row = shop.track("eve", "Order Completed", days_ago(1))
    shop.apply([row])

    eve = shop.profile("eve")
    assert shop.progress(draft_id, eve) is None and shop.progress(ended_id, eve) is None
    assert shop.balance(eve) == 0 and shop.badge_events() == []
    assert c.followed_events(shop.session, shop.program.id) == set()


def test_events_before_activation_count_neither_alone_nor_in_a_window(shop: Shop) -> None:
    before = [shop.track("fay", "Order Completed", days_ago(d)) for d in (6, 5)]
    challenge_id = shop.challenge(activated=days_ago(4), target=2, window_days=30, points=10)
    fay = shop.profile("fay")

    shop.apply(before)
    assert shop.progress(challenge_id, fay) is None

    shop.apply([shop.track("fay", "Order Completed", days_ago(1))])

    progress = shop.progress(challenge_id, fay)
    assert progress is not None and progress.progress == 1 and shop.balance(fay) == 0


def test_a_challenge_counts_only_within_its_dates(shop: Shop) -> None:
    challenge_id = shop.challenge(
        activated=days_ago(60), target=1, starts_at=days_ago(20), ends_at=days_ago(10)
    )
    rows = [shop.track("gus", "Order Completed", days_ago(d)) for d in (25, 5)]
    gus = shop.profile("gus")

    shop.apply(rows)
    assert shop.progress(challenge_id, gus) is None

    shop.apply([shop.track("gus", "Order Completed", days_ago(15))])

    progress = shop.progress(challenge_id, gus)
    assert progress is not None and progress.completed_at is not None


def test_members_progress_separately_in_one_batch(shop: Shop) -> None:
    challenge_id = shop.challenge(activated=days_ago(30), target=2, points=7)
    rows = [shop.track(user, "Order Completed", days_ago(d)) for user, d in
            (("hal", 3), ("ida", 3), ("hal", 2), ("ida", 1), ("ida", 0.5))]  # fmt: skip
    hal, ida = shop.profile("hal"), shop.profile("ida")

    shop.apply(rows)

    assert shop.balance(hal) == 7 and shop.balance(ida) == 7
    ida_progress = shop.progress(challenge_id, ida)
    assert ida_progress is not None and ida_progress.progress == 2  # stops at the event that completed it
    assert sorted(e.profile_id for e in shop.badge_events()) == sorted([hal, ida])


def test_progress_lists_active_challenges_and_ended_ones_taken_part_in(shop: Shop) -> None:
    assert shop.program.id is not None
    won_id = shop.challenge(activated=days_ago(30), name="First order", badge="Newcomer", target=1)
    open_id = shop.challenge(activated=days_ago(30), name="Ten orders", badge="Loyal", target=10)
    shop.challenge(name="Draft", target=1)
    untouched_id = shop.challenge(activated=days_ago(30), name="Old", event="Review Written", target=1)
    shop.apply([shop.track("jon", "Order Completed", days_ago(1))])
    c.end_challenge(shop.session, shop.program.id, won_id)
    c.end_challenge(shop.session, shop.program.id, untouched_id)
    shop.session.commit()
    jon = shop.profile("jon")

    listed = c.progress_of(shop.session, shop.program.id, jon)

    assert [(challenge.name, progress.progress if progress else None) for challenge, progress in listed] == [
        ("First order", 1), ("Ten orders", 1)
    ]  # fmt: skip
    assert c.badges_of(shop.session, shop.program.id, jon) == ["Newcomer"]
    assert open_id in {challenge.id for challenge, _ in listed}


def test_the_loyalty_engine_counts_challenges_as_processed_events_arrive(shop: Shop) -> None:
    challenge_id = shop.challenge(activated=days_ago(1), target=2, points=30)
    shop.track("kim", "Order Completed", days_ago(0.5))
    shop.track("kim", "Order Completed", days_ago(0.1))
    kim = shop.profile("kim")

    run_due_jobs(TENANT, shop.database)

    progress = shop.progress(challenge_id, kim)
    assert progress is not None and progress.completed_at is not None
    assert shop.balance(kim) == 30 and [e.profile_id for e in shop.badge_events()] == [kim]


# --- definitions ------------------------------------------------------------------------------------
def test_invalid_filters_are_refused_with_the_parsers_message(shop: Shop) -> None:
    assert shop.program.id is not None
    body = c.ChallengeIn(name="Bad", badge="Bad", event="Order Completed",
                         where=[{"key": "revenue", "op": "about", "value": 3}])  # fmt: skip

    with pytest.raises(LoyaltyError, match=r"where\[0\]"):
        c.create_challenge(shop.session, shop.program.id, body)


def test_a_distinct_challenge_needs_its_property_and_dates_must_be_in_order() -> None:
    with pytest.raises(ValidationError, match="needs the property"):
        c.ChallengeIn(name="X", badge="X", event="Service Booked", goal=ChallengeGoal.distinct)
    with pytest.raises(ValidationError, match="target"):
        c.ChallengeIn(name="X", badge="X", event="Service Booked", target=0)
    with pytest.raises(ValidationError, match="ends_at must come after starts_at"):
        c.ChallengeIn(name="X", badge="X", event="E", starts_at=days_ago(1), ends_at=days_ago(2))


def test_only_a_draft_changes_and_each_status_moves_one_way(shop: Shop) -> None:
    program_id = shop.program.id
    assert program_id is not None
    challenge_id = shop.challenge(name="Spring", target=2)
    changed = c.update_challenge(shop.session, program_id, challenge_id,
                                 c.ChallengeIn(name="Spring", badge="Spring", event="Order Completed", target=3))  # fmt: skip
    assert changed.target == 3 and changed.status == RuleStatus.draft

    active = c.activate_challenge(shop.session, program_id, challenge_id)
    assert active.status == RuleStatus.active and active.activated_at is not None
    assert c.followed_events(shop.session, program_id) == {"Order Completed"}
    with pytest.raises(c.ChallengeRefused, match="only a draft changes"):
        c.update_challenge(shop.session, program_id, challenge_id,
                           c.ChallengeIn(name="Spring", badge="Spring", event="Order Completed", target=1))  # fmt: skip
    with pytest.raises(c.ChallengeRefused):
        c.activate_challenge(shop.session, program_id, challenge_id)

    assert c.end_challenge(shop.session, program_id, challenge_id).status == RuleStatus.ended
    with pytest.raises(c.ChallengeRefused, match="ended already"):
        c.end_challenge(shop.session, program_id, challenge_id)
    with pytest.raises(c.ChallengeRefused, match="already has a challenge named"):
        shop.challenge(name="Spring")
    with pytest.raises(c.ChallengeNotFound):
        c.get_challenge(shop.session, program_id + 1, challenge_id)
    assert [x.name for x in c.list_challenges(shop.session, program_id)] == ["Spring"]
