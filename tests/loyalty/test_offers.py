"""Offers and coupons: assigned once per profile (one by one or to a segment) with their own codes
and validity, used within their validity and number of uses (idempotently), revoked; what
templates and passes read of them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import event
from sqlmodel import select

from core.db.base import utcnow
from core.ingest.service import accept
from core.loyalty import events, offers
from core.loyalty.ledger import LoyaltyError
from core.loyalty.models import CouponStatus, CouponUse, Offer, OfferStatus
from core.loyalty.offers import CouponNotFound, CouponRefused, OfferIn, OfferNotFound, assign, use_coupon
from core.loyalty.rewards import NameTaken
from core.profiles.jobs import process_events
from core.profiles.service import find_by_identifier
from core.segments.jobs import refresh_segments
from core.segments.service import create_segment
from tests.loyalty.club import ACTOR, TENANT, Club, club, sqlite_club

__all__ = ["club", "sqlite_club"]


def make_offer(club: Club, name: str = "20% off", **settings: Any) -> Offer:
    offer = offers.create_offer(club.session, OfferIn(name=name, **settings), ACTOR)
    club.session.commit()
    return offer


def refused(code: str, club: Club, coupon_code: str, **more: Any) -> CouponRefused:
    with pytest.raises(CouponRefused) as caught:
        use_coupon(club.session, coupon_code, "till", **more)
    club.session.rollback()
    assert caught.value.code == code, caught.value
    return caught.value


@contextmanager
def statements(club: Club) -> Iterator[list[str]]:
    """The SQL statements run on the club's connection meanwhile."""
    seen: list[str] = []
    engine = club.session.get_bind()

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


# --- the offers ----------------------------------------------------------------------------------------
def test_offers_are_created_changed_listed_and_archived(club: Club) -> None:
    coffee = make_offer(club, "Free coffee", value="a coffee", code_prefix="cof", program_id=club.program_id)
    make_offer(club, "20% off", value="20% off the basket", max_uses=3)
    assert (coffee.code_prefix, coffee.status, coffee.created_by) == ("COF", OfferStatus.active, ACTOR)
    assert [o.name for o in offers.list_offers(club.session)] == ["20% off", "Free coffee"]
    assert [o.name for o in offers.list_offers(club.session, program_id=club.program_id)] == ["Free coffee"]

    changed = offers.update_offer(club.session, coffee.id, OfferIn(name="Free coffee", value="a large coffee",
                                                                   valid_days=14), ACTOR)  # fmt: skip
    club.session.commit()
    assert (changed.value, changed.valid_days, changed.code_prefix) == ("a large coffee", 14, "")
    offers.archive_offer(club.session, coffee.id, ACTOR)
    club.session.commit()
    assert [o.name for o in offers.list_offers(club.session)] == ["20% off"]
    assert len(offers.list_offers(club.session, include_archived=True)) == 2
    with pytest.raises(OfferNotFound):
        offers.get_offer(club.session, 999)


def test_an_offer_that_makes_no_sense_is_refused_with_the_reason(sqlite_club: Club) -> None:
    club = sqlite_club
    make_offer(club, "20% off")
    with pytest.raises(NameTaken, match="already named '20% off'"):
        make_offer(club, "20% off")
    club.session.rollback()
    with pytest.raises(LoyaltyError, match="no loyalty program 42"):
        make_offer(club, "Tea", program_id=42)
    with pytest.raises(LoyaltyError, match="valid_until must come after valid_from"):
        make_offer(club, "Tea", valid_from=datetime(2026, 3, 1, tzinfo=UTC), valid_until=datetime(2026, 2, 1))
    for wrong in ({"max_uses": 0}, {"code_prefix": "TEA-"}, {"valid_days": 0}, {"code_prefix": "X" * 11}):
        with pytest.raises(ValidationError):
            OfferIn(name="Tea", **wrong)


# --- assigning -------------------------------------------------------------------------------------------
def test_each_profile_gets_one_coupon_with_its_own_code(club: Club) -> None:
    offer = make_offer(club, "Free coffee", value="a coffee", code_prefix="COF", max_uses=2)

    coupons = assign(club.session, offer.id, ["ann", "bob", "ann"], "marketer@shop.test")
    club.session.commit()
    assert [c.profile_id for c in coupons] == ["ann", "bob"]
    assert all(re.fullmatch(r"COF-[2-9A-HJKMNP-Z]{8}", c.code) for c in coupons)
    assert len({c.code for c in coupons}) == 2
    assert {(c.status, c.uses, c.max_uses, c.assigned_by) for c in coupons} == {
        (CouponStatus.active, 0, 2, "marketer@shop.test")}  # fmt: skip

    again = assign(club.session, offer.id, ["bob", "cid"], "journey:7")
    club.session.commit()
    assert again[0].code == coupons[1].code and again[0].assigned_by == "marketer@shop.test"
    assigned = club.events(events.OFFER_ASSIGNED)
    assert [e.profile_id for e in assigned] == ["ann", "bob", "cid"]  # once per profile
    assert {k: assigned[2].properties[k] for k in ("offer", "value", "code", "assigned_by")} == {
        "offer": "Free coffee", "value": "a coffee", "code": again[1].code, "assigned_by": "journey:7"}  # fmt: skip


def test_a_coupon_lasts_until_the_offer_ends_or_its_days_run_out_whichever_is_first(
    sqlite_club: Club,
) -> None:
    club = sqlite_club
    now = utcnow()
    short = make_offer(club, "Short", valid_days=7, valid_until=now + timedelta(days=30))
    ending = make_offer(club, "Ending", valid_days=7, valid_until=now + timedelta(days=3))
    open_ended = make_offer(club, "Open")

    (a,) = assign(club.session, short.id, ["ann"], ACTOR, now=now)
    (b,) = assign(club.session, ending.id, ["ann"], ACTOR, now=now)
    (c,) = assign(club.session, open_ended.id, ["ann"], ACTOR, now=now)
    assert a.valid_until == now + timedelta(days=7)
    assert b.valid_until == now + timedelta(days=3)
    assert c.valid_until is None


def test_an_archived_or_ended_offer_is_not_assigned(sqlite_club: Club) -> None:
    club = sqlite_club
    gone = make_offer(club, "Gone")
    offers.archive_offer(club.session, gone.id, ACTOR)
    over = make_offer(club, "Over", valid_until=utcnow() - timedelta(days=1))
    for offer, code in ((gone, "archived"), (over, "expired")):
        with pytest.raises(CouponRefused) as caught:
            assign(club.session, offer.id, ["ann"], ACTOR)
        assert caught.value.code == code


def customers(club: Club, **vip: bool) -> dict[str, str]:
    """Customers (by user id) with a ``vip`` trait, through ingestion and processing; their profile ids."""
    batch = [{"type": "identify", "userId": user, "traits": {"email": f"{user}@example.com", "vip": is_vip}}
             for user, is_vip in vip.items()]  # fmt: skip
    assert not accept(club.session, TENANT, batch).rejected
    process_events(TENANT, {})
    club.session.expire_all()
    return {user: find_by_identifier(club.session, "user_id", user).id for user in vip}


def test_an_offer_goes_to_the_current_members_of_a_segment(club: Club) -> None:
    people = customers(club, ann=True, bob=True, cid=False)
    segment = create_segment(club.session, "VIP", {"type": "trait", "key": "vip", "op": "=", "value": True},
                             ACTOR, {})  # fmt: skip
    club.session.commit()
    refresh_segments(TENANT, {"segment_id": segment.id})
    offer = make_offer(club, "VIP gift")

    assert offers.assign_segment(club.session, offer.id, segment.id, ACTOR) == 2
    club.session.commit()
    holders = {profile for profile in people.values() if offers.coupons_of(club.session, profile)}
    assert holders == {people["ann"], people["bob"]}

    customers(club, bob=False, cid=True)  # bob leaves the segment, cid joins
    refresh_segments(TENANT, {"segment_id": segment.id})
    assert offers.assign_segment(club.session, offer.id, segment.id, ACTOR) == 1  # only cid is new
    club.session.commit()
    assert len(club.events(events.OFFER_ASSIGNED)) == 3
    with pytest.raises(LoyaltyError, match="no segment 999"):
        offers.assign_segment(club.session, offer.id, 999, ACTOR)


# --- using -------------------------------------------------------------------------------------------------
def test_a_coupon_is_used_up_after_its_uses(club: Club) -> None:
    offer = make_offer(club, "Two coffees", max_uses=2)
    (coupon,) = assign(club.session, offer.id, ["ann"], ACTOR)
    club.session.commit()

    first = use_coupon(club.session, coupon.code.lower(), "till-1", order_id="A-1")
    club.session.commit()
    assert (first.uses, first.status) == (1, CouponStatus.active)
    second = use_coupon(club.session, coupon.code, "till-2", order_id="A-2")
    club.session.commit()
    assert (second.uses, second.status) == (2, CouponStatus.used)
    assert "used 2 time(s)" in str(refused("used_up", club, coupon.code))

    uses = club.session.exec(select(CouponUse).where(CouponUse.coupon_id == coupon.id)).all()
    assert [(u.order_id, u.actor) for u in uses] == [("A-1", "till-1"), ("A-2", "till-2")]
    used = club.events(events.OFFER_USED)
    assert [(e.properties["order_id"], e.properties["uses_left"]) for e in used] == [("A-1", 1), ("A-2", 0)]
    with pytest.raises(CouponNotFound):
        use_coupon(club.session, "NOPE-1234", "till")


def test_a_repeated_idempotency_key_records_one_use(club: Club) -> None:
    offer = make_offer(club, "Three coffees", max_uses=3)
    ann, bob = assign(club.session, offer.id, ["ann", "bob"], ACTOR)
    club.session.commit()

    for _ in range(3):
        used = use_coupon(club.session, ann.code, "till", order_id="A-1", idempotency_key="pos-1")
        club.session.commit()
        assert used.uses == 1
    assert len(club.session.exec(select(CouponUse)).all()) == 1
    assert len(club.events(events.OFFER_USED)) == 1
    refused("key_reused", club, bob.code, idempotency_key="pos-1")


def test_revoked_expired_early_and_withdrawn_coupons_are_refused(club: Club) -> None:
    now = utcnow()
    week = make_offer(club, "Week", valid_days=7)
    later = make_offer(club, "Later", valid_from=now + timedelta(days=2))
    withdrawn = make_offer(club, "Withdrawn")
    revoked = make_offer(club, "Revoked")
    codes = {
        o.name: assign(club.session, o.id, ["ann"], ACTOR)[0].code for o in (week, later, withdrawn, revoked)
    }
    offers.archive_offer(club.session, withdrawn.id, ACTOR)
    assert offers.revoke_coupon(club.session, codes["Revoked"], ACTOR).status == CouponStatus.revoked
    club.session.commit()

    refused("expired", club, codes["Week"], now=now + timedelta(days=8))
    refused("not_valid_yet", club, codes["Later"])
    refused("archived", club, codes["Withdrawn"])
    refused("revoked", club, codes["Revoked"])
    assert use_coupon(club.session, codes["Later"], "till", now=now + timedelta(days=3)).uses == 1
    with pytest.raises(CouponRefused) as caught:
        offers.revoke_coupon(club.session, codes["Revoked"], ACTOR)
    assert caught.value.code == "revoked"


# --- reading -----------------------------------------------------------------------------------------------
def test_a_profiles_coupons_list_the_usable_ones_first(sqlite_club: Club) -> None:
    club = sqlite_club
    first, second, third = (make_offer(club, name) for name in ("First", "Second", "Third"))
    codes = [assign(club.session, o.id, ["ann"], ACTOR)[0].code for o in (first, second, third)]
    offers.revoke_coupon(club.session, codes[2], ACTOR)
    club.session.commit()
    listed = offers.coupons_of(club.session, "ann")
    assert [(c.code, o.name) for c, o in listed] == [
        (codes[1], "Second"),
        (codes[0], "First"),
        (codes[2], "Third"),
    ]
    assert offers.coupons_of(club.session, "bob") == []


def test_coupon_fields_give_each_profile_its_usable_coupons_in_a_fixed_number_of_queries(club: Club) -> None:
    now = utcnow()
    coffee = make_offer(club, "Free coffee", value="a coffee", max_uses=2, valid_days=10)
    tote = make_offer(club, "Tote bag", value="a bag")
    few = ["p0", "p1"]
    many = [f"p{i}" for i in range(40)]
    assign(club.session, coffee.id, many, ACTOR, now=now)
    (p0_tote,) = assign(club.session, tote.id, ["p0"], ACTOR, now=now)
    (p1_coffee,) = assign(club.session, coffee.id, ["p1"], ACTOR)
    use_coupon(club.session, p1_coffee.code, "till")
    offers.revoke_coupon(club.session, assign(club.session, coffee.id, ["p2"], ACTOR)[0].code, ACTOR)
    club.session.commit()

    with statements(club) as for_few:
        fields = offers.coupon_fields(club.session, [*few, "p2", "nobody"])
    with statements(club) as for_many:
        offers.coupon_fields(club.session, many)
    assert len(for_few) == len(for_many) == 1

    p0 = fields["p0"]
    assert [c["offer"] for c in p0] == ["Free coffee", "Tote bag"]  # soonest to expire first
    assert p0[0] == {"code": p0[0]["code"], "offer": "Free coffee", "value": "a coffee",
                     "valid_until": (now + timedelta(days=10)).isoformat(), "uses_left": 2}  # fmt: skip
    assert p0[1] == {
        "code": p0_tote.code,
        "offer": "Tote bag",
        "value": "a bag",
        "valid_until": None,
        "uses_left": 1,
    }
    assert fields["p1"][0]["uses_left"] == 1
    assert fields["p2"] == [] and fields["nobody"] == []
