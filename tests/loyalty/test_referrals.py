"""Referral: codes applied at sign-up, rewards at the referee's first purchase (once each), and the
fraud guard that rejects a person referring themselves (one profile, a shared device, one email)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, col, select

from core.db.engines import tenant_engine
from core.ingest.models import Event
from core.ingest.service import accept
from core.internal_events.models import InternalEvent
from core.loyalty import referrals
from core.loyalty.events import REFERRAL_QUALIFIED, REFERRAL_REJECTED
from core.loyalty.ledger import LedgerEntry, LoyaltyError, lock_members
from core.loyalty.models import LoyaltyMember, LoyaltyProgram, Referral, ReferralStatus
from core.loyalty.programs import ProgramIn, create_program
from core.loyalty.state import EventRow
from core.profiles.jobs import process_events
from core.profiles.models import Profile
from core.profiles.service import get_profile
from tests.support import run_due_jobs

TENANT = "shop"
NOW = datetime.now(UTC).replace(microsecond=0)


def hours_ago(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


@dataclass
class Shop:
    """A tenant whose program rewards referrals (100 points to the referrer, 50 to the newcomer)."""

    session: Session
    program: LoyaltyProgram
    database: str

    @property
    def program_id(self) -> int:
        assert self.program.id is not None
        return self.program.id

    def send(self, item: dict[str, Any]) -> EventRow:
        """An event, stored and processed for real; as the loyalty engine reads it."""
        message_id = uuid.uuid4().hex
        assert not accept(self.session, TENANT, [{**item, "messageId": message_id}]).rejected
        process_events(TENANT, {})
        self.session.expire_all()
        stored = self.session.exec(select(Event).where(Event.message_id == message_id)).one()
        assert stored.id is not None and stored.profile_id is not None
        return EventRow(stored.id, stored.message_id, stored.event or "", stored.profile_id, stored.properties,
                        stored.timestamp)  # fmt: skip

    def identify(self, at: datetime | None = None, **fields: Any) -> str:
        """An identify call (``userId``, ``anonymousId``, ``traits``); the profile it landed on."""
        return self.send(
            {"type": "identify", "timestamp": (at or hours_ago(48)).isoformat(), **fields}
        ).profile_id

    def track(self, event: str, at: datetime, user: str | None = None, anonymous: str | None = None,
              **properties: Any) -> EventRow:  # fmt: skip
        ids = {"userId": user} if user else {}
        ids |= {"anonymousId": anonymous} if anonymous else {}
        return self.send(
            {"type": "track", "event": event, "properties": properties, "timestamp": at.isoformat(), **ids}
        )

    def apply(self, rows: list[EventRow]) -> None:
        """What the loyalty engine does with a batch: lock the members, apply referral, commit."""
        members = lock_members(self.session, self.program, {row.profile_id for row in rows})
        referrals.on_events(self.session, self.program, rows, members, datetime.now(UTC))
        self.session.commit()
        self.session.expire_all()

    def code_of(self, profile_id: str) -> str:
        code = referrals.member_code(self.session, self.program, profile_id)
        self.session.commit()
        return code

    def referral_of(self, profile_id: str) -> Referral:
        found = referrals.referred_by(self.session, self.program_id, profile_id)
        assert found is not None
        return found

    def balance(self, profile_id: str) -> int:
        member = self.session.get(LoyaltyMember, (self.program.id, profile_id))
        return member.balance if member else 0

    def ledger_keys(self) -> list[str]:
        return [e.key for e in self.session.exec(select(LedgerEntry).order_by(col(LedgerEntry.id)))]

    def told(self, name: str) -> list[InternalEvent]:
        query = select(InternalEvent).where(InternalEvent.name == name).order_by(col(InternalEvent.id))
        return list(self.session.exec(query))


@pytest.fixture
def shop(installation: Any) -> Iterator[Shop]:
    created = installation.tenant(TENANT)
    with Session(tenant_engine(created.tenant.database), expire_on_commit=False) as session:
        body = ProgramIn(key="club", name="Club", referrer_points=100, referee_points=50)
        program = create_program(session, body, "test")
        session.commit()
        yield Shop(session, program, created.tenant.database)


def test_a_referral_applied_at_sign_up_rewards_both_once_at_the_first_purchase(shop: Shop) -> None:
    ann = shop.identify(userId="ann", traits={"email": "ann@example.com"})
    code = shop.code_of(ann)
    sign_up = shop.track("Signed Up", hours_ago(10), user="bob", referral_code=code.lower())
    bob = sign_up.profile_id

    shop.apply([sign_up])

    referral = shop.referral_of(bob)
    assert (referral.referrer_id, referral.code, referral.status) == (ann, code, ReferralStatus.pending)
    assert referral.event_id == sign_up.id
    assert shop.balance(ann) == 0 and shop.balance(bob) == 0

    purchase = shop.track("Order Completed", hours_ago(5), user="bob", revenue=30)
    shop.apply([purchase])

    referral = shop.referral_of(bob)
    assert referral.status == ReferralStatus.qualified and referral.reason == ""
    assert referral.event_id == purchase.id and referral.decided_at is not None
    assert (shop.balance(ann), shop.balance(bob)) == (100, 50)
    assert shop.ledger_keys() == [f"referral:{referral.id}:referrer", f"referral:{referral.id}:referee"]
    told = {
        (e.profile_id, e.properties["role"], e.properties["points"]) for e in shop.told(REFERRAL_QUALIFIED)
    }
    assert told == {(ann, "referrer", 100), (bob, "referee", 50)}

    second = shop.track("Order Completed", hours_ago(1), user="bob", revenue=80)
    shop.apply([second])
    shop.apply([sign_up, purchase, second])  # read again after a crash: nothing changes

    assert (shop.balance(ann), shop.balance(bob)) == (100, 50)
    assert len(shop.ledger_keys()) == 2 and len(shop.told(REFERRAL_QUALIFIED)) == 2
    assert shop.referral_of(bob).event_id == purchase.id
    assert [r.referee_id for r in referrals.referrals_of(shop.session, shop.program_id, ann)] == [bob]


def test_the_loyalty_engine_applies_codes_and_rewards_first_purchases_as_events_arrive(shop: Shop) -> None:
    ann = shop.identify(userId="ann")
    code = shop.code_of(ann)
    bob = shop.track("Signed Up", hours_ago(2), user="bob", referral_code=code).profile_id
    run_due_jobs(TENANT, shop.database)
    shop.track("Order Completed", hours_ago(1), user="bob")

    run_due_jobs(TENANT, shop.database)

    shop.session.expire_all()
    assert shop.referral_of(bob).status == ReferralStatus.qualified
    assert (shop.balance(ann), shop.balance(bob)) == (100, 50)


def test_sign_up_and_first_purchase_in_one_batch_qualify_with_the_camel_case_property(shop: Shop) -> None:
    ann = shop.identify(userId="ann")
    rows = [shop.track("Signed Up", hours_ago(3), user="cat", referralCode=shop.code_of(ann)),
            shop.track("Order Completed", hours_ago(2), user="cat"),
            shop.track("Order Completed", hours_ago(1), user="cat")]  # fmt: skip

    shop.apply(rows)

    referral = shop.referral_of(rows[0].profile_id)
    assert referral.status == ReferralStatus.qualified and referral.event_id == rows[1].id
    assert (shop.balance(ann), shop.balance(rows[0].profile_id)) == (100, 50)


def test_a_member_cannot_use_their_own_code(shop: Shop) -> None:
    ann = shop.identify(userId="ann")
    code = shop.code_of(ann)

    with pytest.raises(LoyaltyError, match="own referral code"):
        referrals.apply_code(shop.session, shop.program, ann, code)
    shop.apply([shop.track("Signed Up", hours_ago(1), user="ann", referral_code=code)])  # logged, not raised

    assert referrals.referred_by(shop.session, shop.program_id, ann) is None


def test_a_referee_later_merged_into_the_referrer_is_rejected_as_the_same_person(shop: Shop) -> None:
    ann = shop.identify(userId="ann", at=hours_ago(100))
    sign_up = shop.track("Signed Up", hours_ago(10), anonymous="visitor-1", referral_code=shop.code_of(ann))
    shop.apply([sign_up])
    assert shop.referral_of(sign_up.profile_id).status == ReferralStatus.pending

    shop.identify(userId="ann", anonymousId="visitor-1", at=hours_ago(9))  # the visitor logs in: it was Ann
    assert get_profile(shop.session, sign_up.profile_id).id == ann
    shop.apply([shop.track("Order Completed", hours_ago(1), user="ann")])

    referral = shop.referral_of(ann)
    assert referral.status == ReferralStatus.rejected and "same person" in referral.reason
    assert shop.balance(ann) == 0 and shop.ledger_keys() == []
    (told,) = shop.told(REFERRAL_REJECTED)
    assert told.profile_id == ann and told.properties["reason"] == referral.reason


def test_a_referee_sharing_an_identifier_with_the_referrer_is_rejected(shop: Shop) -> None:
    ann = shop.identify(userId="ann", anonymousId="family-laptop")
    # Bob signs up on Ann's laptop: two known customers stay apart, but they share the device.
    sign_up = shop.track("Signed Up", hours_ago(3), user="bob", anonymous="family-laptop",
                         referral_code=shop.code_of(ann))  # fmt: skip
    bob = sign_up.profile_id
    assert bob != ann

    shop.apply([sign_up, shop.track("Order Completed", hours_ago(1), user="bob")])

    referral = shop.referral_of(bob)
    assert referral.status == ReferralStatus.rejected
    assert referral.reason == "The referee and the referrer share an identifier (anonymous_id)."
    assert (shop.balance(ann), shop.balance(bob)) == (0, 0)
    assert {e.profile_id for e in shop.told(REFERRAL_REJECTED)} == {ann, bob}


def test_a_referee_with_the_referrers_email_is_rejected(shop: Shop) -> None:
    ann = shop.identify(userId="ann", traits={"email": "ann@example.com"})
    bob = shop.identify(userId="bob")
    # A trait set without identity resolution (an import mapping, a hand edit): no shared identifier.
    profile = shop.session.get(Profile, bob)
    assert profile is not None
    profile.traits = {**profile.traits, "email": " Ann@Example.com "}
    shop.session.add(profile)
    shop.session.commit()
    referrals.apply_code(shop.session, shop.program, bob, shop.code_of(ann))
    shop.session.commit()

    shop.apply([shop.track("Order Completed", hours_ago(1), user="bob")])

    referral = shop.referral_of(bob)
    assert referral.status == ReferralStatus.rejected
    assert referral.reason == "The referee and the referrer have the same email."


def test_unknown_codes_are_refused_and_ignored_in_the_stream(shop: Shop) -> None:
    bob = shop.identify(userId="bob")

    with pytest.raises(LoyaltyError, match="Unknown referral code 'NOPE1234'"):
        referrals.apply_code(shop.session, shop.program, bob, "nope1234")
    shop.apply([shop.track("Signed Up", hours_ago(1), user="bob", referral_code="NOPE1234")])

    assert referrals.referred_by(shop.session, shop.program_id, bob) is None


def test_a_person_is_referred_once(shop: Shop) -> None:
    ann, cat, bob = shop.identify(userId="ann"), shop.identify(userId="cat"), shop.identify(userId="bob")
    first = referrals.apply_code(shop.session, shop.program, bob, shop.code_of(ann))

    again = referrals.apply_code(shop.session, shop.program, bob, shop.code_of(ann))
    with pytest.raises(LoyaltyError, match="already came with the referral code"):
        referrals.apply_code(shop.session, shop.program, bob, shop.code_of(cat))

    assert again.id == first.id
    assert shop.referral_of(bob).referrer_id == ann
    assert referrals.referrals_of(shop.session, shop.program_id, cat) == []


def test_a_customer_who_bought_before_the_referral_is_not_a_newcomer(shop: Shop) -> None:
    ann = shop.identify(userId="ann")
    earlier = shop.track("Order Completed", hours_ago(30), user="bob")
    shop.apply([earlier])
    referrals.apply_code(shop.session, shop.program, earlier.profile_id, shop.code_of(ann))
    shop.session.commit()

    shop.apply([shop.track("Order Completed", hours_ago(1), user="bob")])

    referral = shop.referral_of(earlier.profile_id)
    assert referral.status == ReferralStatus.rejected and "first Order Completed" in referral.reason
    assert shop.balance(ann) == 0


def test_every_member_has_one_stable_code(shop: Shop) -> None:
    ann = shop.identify(userId="ann")

    code = shop.code_of(ann)

    assert len(code) == 8 and code == shop.code_of(ann)
    assert referrals.followed_events(shop.program) == {"Signed Up", "Order Completed"}
