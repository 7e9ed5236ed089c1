"""Rewards: the catalogue, redeeming for vouchers (every refusal with its reason), using and
cancelling vouchers; and on PostgreSQL, concurrent redemptions never oversell or overdraw."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from sqlmodel import select

from core.db.base import utcnow
from core.loyalty import events, ledger, rewards
from core.loyalty.ledger import LoyaltyError
from core.loyalty.models import (
    EntryKind,
    LedgerEntry,
    Redemption,
    RedemptionStatus,
    Reward,
    RewardStatus,
)
from core.loyalty.rewards import (
    NameTaken,
    RedemptionNotFound,
    RedemptionRefused,
    RewardIn,
    RewardNotFound,
    cancel_redemption,
    redeem,
    redemptions_of,
    use_voucher,
)
from tests.loyalty.club import ACTOR, Club, club, postgres_club, sqlite_club

__all__ = ["club", "postgres_club", "sqlite_club"]


def refused(code: str, club: Club, reward: Reward, profile_id: str, **more) -> RedemptionRefused:
    """Redeeming is refused with ``code``; nothing was taken."""
    assert reward.id is not None
    before = club.balance(profile_id) if profile_id != "nobody" else None
    with pytest.raises(RedemptionRefused) as caught:
        redeem(club.session, club.program, reward.id, profile_id, ACTOR, **more)
    club.session.rollback()
    assert caught.value.code == code, caught.value
    if before is not None:
        assert club.balance(profile_id) == before
    return caught.value


# --- the catalogue -----------------------------------------------------------------------------------
def test_the_catalogue_lists_changes_and_archives_rewards(club: Club) -> None:
    coffee = club.reward("Free coffee", 100, stock=10)
    cake = club.reward("Cake", 50)
    assert [r.name for r in rewards.list_rewards(club.session, club.program_id)] == ["Cake", "Free coffee"]

    changed = rewards.update_reward(club.session, club.program_id, coffee.id,
                                    RewardIn(name="Free coffee", cost=120, stock=5, voucher_days=30), ACTOR)  # fmt: skip
    club.session.commit()
    assert (changed.cost, changed.stock, changed.voucher_days) == (120, 5, 30)
    rewards.archive_reward(club.session, club.program_id, cake.id, ACTOR)
    club.session.commit()
    assert [r.name for r in rewards.list_rewards(club.session, club.program_id)] == ["Free coffee"]
    listed = rewards.list_rewards(club.session, club.program_id, include_archived=True)
    assert {r.name: r.status for r in listed} == {"Free coffee": "active", "Cake": RewardStatus.archived}
    assert rewards.get_reward(club.session, cake.id, club.program_id).name == "Cake"
    with pytest.raises(RewardNotFound):
        rewards.get_reward(club.session, cake.id, club.program_id + 1)


def test_a_reward_that_makes_no_sense_is_refused_with_the_reason(sqlite_club: Club) -> None:
    club = sqlite_club
    club.reward("Free coffee")
    with pytest.raises(NameTaken, match="already has a reward named 'Free coffee'"):
        club.reward("Free coffee", 10)
    club.session.rollback()
    with pytest.raises(LoyaltyError, match="no loyalty program 99"):
        rewards.create_reward(club.session, 99, RewardIn(name="Tea", cost=10), ACTOR)
    with pytest.raises(LoyaltyError, match="valid_until must come after valid_from"):
        club.reward("Tea", 10, valid_from=datetime(2026, 5, 1, tzinfo=UTC), valid_until=datetime(2026, 4, 1))
    with pytest.raises(LoyaltyError, match="no tier 7"):
        club.reward("Tea", 10, min_tier_id=7)
    for wrong in ({"cost": 0}, {"cost": 10, "stock": -1}, {"cost": 10, "per_profile_limit": 0}):
        with pytest.raises(ValidationError):
            RewardIn(name="Tea", **wrong)


# --- redeeming -----------------------------------------------------------------------------------------
def test_redeeming_issues_a_voucher_and_takes_its_cost_and_a_unit_of_stock(club: Club) -> None:
    club.give("ann", 250)
    coffee = club.reward("Free coffee", 100, stock=5, voucher_days=30)

    redemption = redeem(club.session, club.program, coffee.id, "ann", ACTOR)
    club.session.commit()

    assert re.fullmatch(r"FREECO-[2-9A-HJKMNP-Z]{8}", redemption.code), redemption.code
    assert (redemption.status, redemption.cost, redemption.profile_id) == (
        RedemptionStatus.issued,
        100,
        "ann",
    )
    assert redemption.expires_at is not None
    assert redemption.expires_at - redemption.created_at == timedelta(days=30)
    assert club.balance("ann") == 150
    club.session.refresh(coffee)
    assert (coffee.stock, coffee.issued) == (4, 1)
    (entry,) = club.session.exec(select(LedgerEntry).where(LedgerEntry.kind == EntryKind.redeem)).all()
    assert (entry.points, entry.key, entry.redemption_id, entry.reason, entry.actor) == (
        -100, f"redeem:{redemption.id}", redemption.id, "Free coffee", ACTOR)  # fmt: skip
    (event,) = club.events(events.REWARD_REDEEMED)
    assert event.profile_id == "ann"
    assert {k: event.properties[k] for k in ("reward", "code", "cost", "program")} == {
        "reward": "Free coffee", "code": redemption.code, "cost": 100, "program": "club"}  # fmt: skip
    (points,) = club.events(events.POINTS_REDEEMED)
    assert points.properties["points"] == -100
    assert [r.id for r in redemptions_of(club.session, "ann")] == [redemption.id]
    assert redemptions_of(club.session, "ann", club.program_id + 1) == []


def test_every_refusal_says_why(club: Club) -> None:
    now = utcnow()
    club.give("ann", 1_000)
    club.give("bob", 50)

    assert "costs 100 points; the balance is 50" in str(
        refused("insufficient_points", club, club.reward(), "bob")
    )
    refused("out_of_stock", club, club.reward("Mug", 10, stock=0), "ann")
    once = club.reward("Welcome gift", 10, per_profile_limit=1)
    redeem(club.session, club.program, once.id, "ann", ACTOR)
    club.session.commit()
    refused("limit_reached", club, once, "ann")
    refused("not_valid_yet", club, club.reward("Summer", 10, valid_from=now + timedelta(days=1)), "ann")
    refused("expired", club, club.reward("Spring", 10, valid_until=now - timedelta(days=1)), "ann")
    withdrawn = club.reward("Old stock", 10)
    rewards.archive_reward(club.session, club.program_id, withdrawn.id, ACTOR)
    club.session.commit()
    refused("archived", club, withdrawn, "ann")
    refused("not_a_member", club, club.reward("Tea", 10), "nobody")
    with pytest.raises(RewardNotFound):
        redeem(club.session, club.program, 999, "ann", ACTOR)


def test_a_reward_for_a_tier_needs_that_tier_or_above(club: Club) -> None:
    silver, gold = club.tier("Silver", 100), club.tier("Gold", 1_000)
    lounge = club.reward("Lounge access", 10, min_tier_id=silver.id)
    club.give("ann", 50)  # no tier
    club.give("bob", 50, qualifying=200)  # Silver
    club.give("cid", 50, qualifying=2_000)  # Gold

    assert "needs tier 'Silver' or above" in str(refused("tier_required", club, lounge, "ann"))
    for profile_id in ("bob", "cid"):
        redeem(club.session, club.program, lounge.id, profile_id, ACTOR)
        club.session.commit()
    assert gold.id is not None and club.balance("cid") == 40


def test_a_cancelled_voucher_does_not_count_towards_the_limit(sqlite_club: Club) -> None:
    club = sqlite_club
    club.give("ann", 100)
    once = club.reward("Welcome gift", 10, per_profile_limit=1)
    first = redeem(club.session, club.program, once.id, "ann", ACTOR)
    cancel_redemption(club.session, first.id, ACTOR)
    second = redeem(club.session, club.program, once.id, "ann", ACTOR)
    club.session.commit()
    assert second.id != first.id and club.balance("ann") == 90


def test_voucher_codes_are_unique_and_a_collision_draws_again(sqlite_club: Club, monkeypatch) -> None:
    club = sqlite_club
    club.give("ann", 10_000)
    coffee = club.reward("Free coffee", 10)
    codes = {redeem(club.session, club.program, coffee.id, "ann", ACTOR).code for _ in range(40)}
    club.session.commit()
    assert len(codes) == 40

    taken = sorted(codes)[0].removeprefix("FREECO-")
    drawn = iter([taken, taken, "FRESHONE"])
    monkeypatch.setattr(rewards, "new_code", lambda prefix="": f"{prefix}-{next(drawn)}")
    again = redeem(club.session, club.program, coffee.id, "ann", ACTOR)
    club.session.commit()
    assert again.code == "FREECO-FRESHONE"
    assert club.balance("ann") == 10_000 - 41 * 10  # the failed draws took nothing


def test_a_repeated_idempotency_key_returns_the_same_redemption_without_a_second_debit(club: Club) -> None:
    club.give("ann", 300)
    coffee, cake = club.reward("Free coffee", 100), club.reward("Cake", 100)
    first = redeem(club.session, club.program, coffee.id, "ann", ACTOR, idempotency_key="order-1")
    club.session.commit()
    again = redeem(club.session, club.program, coffee.id, "ann", ACTOR, idempotency_key="order-1")
    club.session.commit()
    assert (again.id, again.code) == (first.id, first.code)
    assert club.balance("ann") == 200
    assert len(club.events(events.REWARD_REDEEMED)) == 1
    assert "already used for another redemption" in str(
        refused("key_reused", club, cake, "ann", idempotency_key="order-1")
    )


# --- vouchers ------------------------------------------------------------------------------------------
def test_a_voucher_is_used_once(club: Club) -> None:
    club.give("ann", 100)
    coffee = club.reward("Free coffee", 100)
    voucher = redeem(club.session, club.program, coffee.id, "ann", ACTOR)
    club.session.commit()

    used = use_voucher(club.session, voucher.code.lower(), "till-3", order_id="A-17")
    club.session.commit()
    assert used.status == RedemptionStatus.used and used.used_at is not None
    (event,) = club.events(events.VOUCHER_USED)
    assert (event.profile_id, event.properties["code"], event.properties["order_id"]) == (
        "ann",
        voucher.code,
        "A-17",
    )
    with pytest.raises(RedemptionRefused, match="already used") as caught:
        use_voucher(club.session, voucher.code, "till-3")
    assert caught.value.code == "used"
    club.session.rollback()
    with pytest.raises(RedemptionRefused) as caught:
        cancel_redemption(club.session, voucher.id, ACTOR)
    assert caught.value.code == "used"
    club.session.rollback()
    with pytest.raises(RedemptionNotFound):
        use_voucher(club.session, "NOPE-12345678", "till-3")


def test_an_expired_or_cancelled_voucher_is_refused(sqlite_club: Club) -> None:
    club = sqlite_club
    club.give("ann", 200)
    coffee = club.reward("Free coffee", 100, voucher_days=7)
    late = redeem(club.session, club.program, coffee.id, "ann", ACTOR)
    gone = redeem(club.session, club.program, coffee.id, "ann", ACTOR)
    cancel_redemption(club.session, gone.id, ACTOR)
    club.session.commit()

    with pytest.raises(RedemptionRefused, match="expired") as caught:
        use_voucher(club.session, late.code, "till", now=utcnow() + timedelta(days=8))
    assert caught.value.code == "expired"
    with pytest.raises(RedemptionRefused, match="cancelled") as caught:
        use_voucher(club.session, gone.code, "till")
    assert caught.value.code == "cancelled"


def test_cancelling_gives_the_points_and_the_stock_back(club: Club) -> None:
    club.give("ann", 150)
    coffee = club.reward("Free coffee", 100, stock=1)
    voucher = redeem(club.session, club.program, coffee.id, "ann", ACTOR)
    club.session.commit()
    assert club.balance("ann") == 50

    cancelled = cancel_redemption(club.session, voucher.id, "support@shop.test")
    club.session.commit()
    assert cancelled.status == RedemptionStatus.cancelled and cancelled.cancelled_at is not None
    assert club.balance("ann") == 150
    club.session.refresh(coffee)
    assert (coffee.stock, coffee.issued) == (1, 0)
    refund = club.session.exec(select(LedgerEntry).where(LedgerEntry.kind == EntryKind.refund)).one()
    assert (refund.points, refund.key, refund.redemption_id) == (100, f"refund:{voucher.id}", voucher.id)
    assert club.events(events.POINTS_REFUNDED)[0].properties["points"] == 100
    assert ledger.ledger_sums(club.session, club.program_id, "ann") == {
        "balance": 150, "earned": 150, "redeemed": 0, "expired": 0}  # fmt: skip
    with pytest.raises(RedemptionRefused) as caught:
        cancel_redemption(club.session, voucher.id, ACTOR)
    assert caught.value.code == "cancelled"
    club.session.rollback()
    with pytest.raises(RedemptionNotFound):
        cancel_redemption(club.session, 999, ACTOR)
    # The unit came back: someone else can have it.
    club.give("bob", 100)
    redeem(club.session, club.program, coffee.id, "bob", ACTOR)
    club.session.commit()


# --- concurrency (PostgreSQL: row locks) ----------------------------------------------------------------
def race(club: Club, reward_id: int, profile_ids: list[str]) -> tuple[list[Redemption], list[str]]:
    """Each profile redeems at the same moment, each in its own session; (successes, refusal codes)."""
    barrier = threading.Barrier(len(profile_ids))
    won: list[Redemption] = []
    lost: list[str] = []
    failures: list[Exception] = []

    def attempt(profile_id: str) -> None:
        with club.new_session() as session:
            try:
                barrier.wait()
                redemption = redeem(session, club.program, reward_id, profile_id, ACTOR)
                session.commit()
                won.append(redemption)
            except RedemptionRefused as exc:
                session.rollback()
                lost.append(exc.code)
            except Exception as exc:  # reported by the assertion below
                failures.append(exc)

    threads = [threading.Thread(target=attempt, args=(p,)) for p in profile_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    return won, lost


@pytest.mark.postgres
@pytest.mark.parametrize("stock", [1, 3])
def test_concurrent_redemptions_never_oversell(postgres_club: Club, stock: int) -> None:
    club = postgres_club
    members = [f"m{i}" for i in range(8)]
    for member in members:
        club.give(member, 500)
    prize = club.reward("Concert tickets", 200, stock=stock)

    won, lost = race(club, prize.id, members)

    assert len(won) == stock and lost == ["out_of_stock"] * (len(members) - stock)
    assert len({r.code for r in won}) == stock
    club.session.refresh(prize)
    assert (prize.stock, prize.issued) == (0, stock)
    winners = {r.profile_id for r in won}
    for member in members:
        assert club.balance(member) == (300 if member in winners else 500)  # balance() checks the ledger too


@pytest.mark.postgres
def test_concurrent_redemptions_by_one_member_never_overdraw(postgres_club: Club) -> None:
    club = postgres_club
    club.give("ann", 150)
    coffee = club.reward("Free coffee", 100)  # unlimited: only the balance limits

    won, lost = race(club, coffee.id, ["ann"] * 8)

    assert len(won) == 1 and lost == ["insufficient_points"] * 7
    assert club.balance("ann") == 50
    entries = ledger.entries_of(club.session, club.program_id, "ann")
    assert sorted(e.points for e in entries) == [-100, 150]
    club.session.refresh(coffee)
    assert coffee.issued == 1


@pytest.mark.postgres
def test_concurrent_retries_with_one_idempotency_key_redeem_once(postgres_club: Club) -> None:
    club = postgres_club
    club.give("ann", 1_000)
    coffee = club.reward("Free coffee", 100)
    barrier = threading.Barrier(6)
    found: list[int | None] = []

    def attempt() -> None:
        with club.new_session() as session:
            barrier.wait()
            found.append(redeem(session, club.program, coffee.id, "ann", ACTOR, idempotency_key="k-1").id)
            session.commit()

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(found) == 6 and len(set(found)) == 1
    assert club.balance("ann") == 900
