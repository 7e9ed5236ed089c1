"""The demo tenant's loyalty program, "Tessera Club": points on ``Order Completed``, three tiers,
rewards, a challenge, and the sample customers' history applied to it.

The program is dated back to before the sample history, so the demo opens with balances, tiers
and ledgers to look at; a real program starts earning from the moment its rules are activated.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlmodel import select

from core.db.engines import tenant_session
from core.loyalty import challenges, engine, programs, rewards
from core.loyalty.models import ExpiryPolicy, LoyaltyProgram, RuleKind, RuleStatus
from core.streams.cursor import StreamCursor
from core.tenancy.models import Tenant

KEY = "club"
LAUNCHED = datetime(2024, 1, 1, tzinfo=UTC)
ACTOR = "demo"


def seed_demo_loyalty(tenant: Tenant) -> None:
    """Create the demo program once, then apply it to the sample customers' events."""
    with tenant_session(tenant.database) as session:
        if session.exec(select(LoyaltyProgram).where(LoyaltyProgram.key == KEY)).first() is not None:
            return
        body = programs.ProgramIn(
            key=KEY, name="Tessera Club", currency="points", period_anchor=date(2026, 1, 1),
            description="One point per euro spent; Silver and Gold earn more.", expiry_policy=ExpiryPolicy.rolling,
            expiry_months=24, referrer_points=200, referee_points=100,
        )  # fmt: skip
        program = programs.create_program(session, body, ACTOR)
        assert program.id is not None
        for name, threshold, multiplier, benefits in (
            ("Member", 0, 1.0, "Points on every order"),
            ("Silver", 500, 1.25, "25% more points, free delivery"),
            ("Gold", 1500, 1.5, "50% more points, free delivery, early access to sales"),
        ):
            programs.add_tier(session, program.id, programs.TierIn(name=name, threshold=threshold,
                                                                   multiplier=multiplier, benefits=benefits))  # fmt: skip
        rules = [
            programs.RuleIn(name="1 point per euro", event="Order Completed", kind=RuleKind.per_amount, points=1,
                            where=[{"key": "currency", "op": "=", "value": "EUR"}]),
            programs.RuleIn(name="Big basket bonus", event="Order Completed", points=50,
                            where=[{"key": "revenue", "op": ">=", "value": 150}], tier_multiplier=False),
            programs.RuleIn(name="Review bonus", event="Product Reviewed", points=20, cap_per_month=60),
        ]  # fmt: skip
        for rule_in in rules:
            rule = programs.create_rule(session, program.id, rule_in, ACTOR, {})
            assert rule.id is not None
            programs.set_rule_status(session, program.id, rule.id, RuleStatus.active, ACTOR)
            rule.activated_at = LAUNCHED
        for name, cost, stock in (("Free coffee", 100, None), ("10 EUR voucher", 500, None),
                                  ("Tessera tote bag", 1200, 25)):  # fmt: skip
            rewards.create_reward(
                session, program.id, rewards.RewardIn(name=name, cost=cost, stock=stock), ACTOR
            )
        challenge = challenges.create_challenge(session, program.id, challenges.ChallengeIn(
            name="Three in a month", badge="Regular", event="Order Completed", target=3, window_days=30, points=100,
            description="Order three times within 30 days."), ACTOR)  # fmt: skip
        assert challenge.id is not None
        challenges.activate_challenge(session, program.id, challenge.id, ACTOR)
        challenge.activated_at = LAUNCHED
        # The program predates the sample history: its cursors start at the beginning of the stream.
        for cursor in session.exec(select(StreamCursor).where(StreamCursor.name.startswith("loyalty:"))):
            cursor.last_id = 0
            session.add(cursor)
        session.commit()
        parts = engine.parts_of(session)
    for part in range(parts):
        engine.apply_events(tenant.slug, {"part": part})
