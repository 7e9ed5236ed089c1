"""A member's standing per program: balance and totals, tier and the way to the next one, the next
reward in reach, badges and referral code; read for many profiles in a fixed number of queries, and
shown to templates as the ``loyalty`` namespace.

The Club (points) has the tiers Silver (100, x1.25), Gold (500, x1.5) and Platinum (2000, x2) and a
catalogue where only the coffee (50) and the tote bag (300) can be had today: the rest is sold out,
expired, not yet valid or withdrawn. The Stars program is a second active one; the Old club is
archived.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from core.db.engines import tenant_engine
from core.loyalty.models import (
    Challenge,
    ChallengeGoal,
    ChallengeProgress,
    LoyaltyMember,
    LoyaltyProgram,
    ProgramStatus,
    Reward,
    RewardStatus,
    Tier,
)
from core.loyalty.standing import FIELD_NAMES, Standing, loyalty_namespace, standings

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)


def program(key: str, name: str, **more: Any) -> LoyaltyProgram:
    return LoyaltyProgram(key=key, name=name, period_anchor=ANCHOR, **more)


@pytest.fixture
def session(installation) -> Iterator[Session]:
    """The tenant's database with the programs, tiers, rewards and challenges above, and members:
    Ann (Silver, in the Club, the Stars and the Old club), Bob (no tier), Eve (Platinum, rich)."""
    database = installation.tenant("acme").tenant.database
    with Session(tenant_engine(database), expire_on_commit=False) as session:
        club = program("club", "Club")
        stars = program("stars", "Stars", currency="stars")
        old = program("old", "Old club", status=ProgramStatus.archived)
        session.add_all([club, stars, old])
        session.flush()
        assert club.id and stars.id and old.id
        silver, gold, platinum = (Tier(program_id=club.id, name=name, threshold=threshold, multiplier=factor)
                                  for name, threshold, factor in (("Silver", 100, 1.25), ("Gold", 500, 1.5),
                                                                  ("Platinum", 2000, 2.0)))  # fmt: skip
        session.add_all([silver, gold, platinum])
        session.flush()
        session.add_all([
            Reward(program_id=club.id, name="Coffee", cost=50),
            Reward(program_id=club.id, name="Tote bag", cost=300, stock=12),
            Reward(program_id=club.id, name="Sold-out mug", cost=150, stock=0),
            Reward(program_id=club.id, name="Winter scarf", cost=200, valid_until=NOW - timedelta(days=1)),
            Reward(program_id=club.id, name="Summer hat", cost=250, valid_from=NOW + timedelta(days=30)),
            Reward(program_id=club.id, name="Old poster", cost=120, status=RewardStatus.archived),
            Reward(program_id=stars.id, name="Star sticker", cost=10),
        ])  # fmt: skip
        challenges = [Challenge(program_id=club.id, name=name, badge=badge, event="Order Completed",
                                goal=ChallengeGoal.distinct, property="category", target=2)
                      for name, badge in (("First order", "Starter"), ("Weekend", "Weekender"),
                                          ("Explorer", "Explorer"))]  # fmt: skip
        session.add_all(challenges)
        session.flush()
        first, weekend, explorer = (c.id or 0 for c in challenges)
        session.add_all([
            LoyaltyMember(program_id=club.id, profile_id="ann", balance=120, earned=200, redeemed=60, expired=20,
                          qualifying=180, tier_id=silver.id, referral_code="ANN-CLUB"),
            LoyaltyMember(program_id=stars.id, profile_id="ann", balance=3, earned=3, referral_code="ANN-STARS"),
            LoyaltyMember(program_id=old.id, profile_id="ann", balance=7, earned=7, referral_code="ANN-OLD"),
            LoyaltyMember(program_id=club.id, profile_id="bob", qualifying=40, referral_code="BOB-CLUB"),
            LoyaltyMember(program_id=club.id, profile_id="eve", balance=5000, earned=5000, qualifying=2500,
                          tier_id=platinum.id, referral_code="EVE-CLUB"),
            ChallengeProgress(challenge_id=first, profile_id="ann", progress=2, target=2, completed_at=NOW),
            ChallengeProgress(challenge_id=weekend, profile_id="ann", progress=2, target=2,
                              completed_at=NOW - timedelta(days=5)),
            ChallengeProgress(challenge_id=explorer, profile_id="ann", progress=1, target=2),
            ChallengeProgress(challenge_id=first, profile_id="bob", progress=1, target=2),
        ])  # fmt: skip
        session.commit()
        yield session


def by_key(found: list[Standing]) -> dict[str, Standing]:
    return {standing.program_key: standing for standing in found}


def test_a_member_sees_balance_tier_next_tier_next_reward_and_badges(session: Session) -> None:
    ann = by_key(standings(session, ["ann"], now=NOW)["ann"])["club"]
    assert ann.fields() == {
        "key": "club", "name": "Club", "currency": "points", "balance": 120, "earned": 200, "redeemed": 60,
        "expired": 20, "tier": "Silver", "next_tier": "Gold", "to_next_tier": 320.0, "qualifying": 180.0,
        # The coffee is affordable; mug, scarf, hat and poster cannot be had now: the tote bag is next.
        "next_reward": "Tote bag", "to_next_reward": 180,
        "badges": ["Weekender", "Starter"],  # by completion; the explorer challenge is still running
        "referral_code": "ANN-CLUB",
    }  # fmt: skip
    assert (ann.tier_multiplier, ann.member) == (1.25, True)
    assert tuple(ann.fields()) == FIELD_NAMES


def test_without_a_tier_the_next_tier_is_the_lowest_and_at_the_top_there_is_none(session: Session) -> None:
    found = standings(session, ["bob", "eve"], now=NOW)
    (bob,), (eve,) = found["bob"], found["eve"]
    assert (bob.tier, bob.tier_multiplier, bob.next_tier, bob.to_next_tier) == (None, 1.0, "Silver", 60.0)
    assert (bob.next_reward, bob.to_next_reward, bob.badges) == ("Coffee", 50, ())
    assert (eve.tier, eve.tier_multiplier, eve.next_tier, eve.to_next_tier) == ("Platinum", 2.0, None, None)
    assert (eve.next_reward, eve.to_next_reward) == (None, None)  # she can afford everything on offer


def test_the_distance_to_the_next_tier_is_never_negative(session: Session) -> None:
    # Qualified for Gold already, before the tier is recomputed.
    member = session.get(
        LoyaltyMember, (by_key(standings(session, ["ann"])["ann"])["club"].program_id, "ann")
    )
    assert member is not None
    member.qualifying = 650
    session.flush()
    ann = by_key(standings(session, ["ann"])["ann"])["club"]
    assert (ann.tier, ann.next_tier, ann.to_next_tier) == ("Silver", "Gold", 0.0)


def test_rewards_are_available_within_their_dates(session: Session) -> None:
    in_summer = NOW + timedelta(days=31)
    ann = by_key(standings(session, ["ann"], now=in_summer)["ann"])["club"]
    assert (ann.next_reward, ann.to_next_reward) == ("Summer hat", 130)


def test_standings_list_active_programs_in_id_order_and_non_members_get_none(session: Session) -> None:
    found = standings(session, ["ann", "bob", "cyd"], now=NOW)
    assert [s.program_key for s in found["ann"]] == ["club", "stars"]  # the old club is archived
    assert [s.program_key for s in found["bob"]] == ["club"]
    assert found["cyd"] == []
    old = standings(session, ["ann"], program_ids=[s.program_id for s in found["ann"]] + [3])["ann"]
    assert [s.program_key for s in old] == ["club", "stars", "old"]  # named programs, whatever their status


def test_standings_take_a_fixed_number_of_queries_however_many_profiles(session: Session) -> None:
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    engine = session.get_bind()
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        standings(session, ["ann"], now=NOW)
        one = len(statements)
        statements.clear()
        standings(session, ["ann", "bob", "eve", "cyd", *(f"p{i}" for i in range(50))], now=NOW)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == one == 5  # programs, members, tiers, rewards, badges


def test_the_loyalty_namespace_has_every_program_by_key_and_the_first_at_the_top(session: Session) -> None:
    namespace = loyalty_namespace(standings(session, ["ann"], now=NOW)["ann"])
    assert namespace["balance"] == 120 and namespace["tier"] == "Silver" and namespace["key"] == "club"
    assert namespace["club"]["balance"] == 120 and namespace["club"]["next_reward"] == "Tote bag"
    assert namespace["stars"] == {  # no tier to show: left out, so a message using it reports it missing
        "key": "stars", "name": "Stars", "currency": "stars", "balance": 3, "earned": 3, "redeemed": 0,
        "expired": 0, "qualifying": 0.0, "next_reward": "Star sticker", "to_next_reward": 7, "badges": [],
        "referral_code": "ANN-STARS",
    }  # fmt: skip
    assert "old" not in namespace
    assert loyalty_namespace([]) == {}
