"""The demo tenant runs a loyalty program on its sample orders: balances, tiers, ledgers, rewards."""

from __future__ import annotations

from sqlmodel import Session, select

from core.db.engines import tenant_engine
from core.demo import seed_demo_data
from core.loyalty.ledger import ledger_sums
from core.loyalty.models import LedgerEntry, LoyaltyMember, LoyaltyProgram, Reward, Tier


def test_the_demo_program_earns_on_the_sample_orders_once(sqlite_installation) -> None:
    database = sqlite_installation.tenant("demo").tenant.database
    seed_demo_data("demo")
    with Session(tenant_engine(database)) as session:
        entries = len(session.exec(select(LedgerEntry)).all())
    seed_demo_data("demo")  # again: nothing is earned twice
    with Session(tenant_engine(database)) as session:
        [program] = session.exec(select(LoyaltyProgram)).all()
        members = session.exec(select(LoyaltyMember)).all()
        tiers = {t.id: t.name for t in session.exec(select(Tier))}
        assert len(session.exec(select(LedgerEntry)).all()) == entries
        assert (program.key, program.name) == ("club", "Tessera Club")
        assert len(members) > 50 and sum(m.balance for m in members) > 0
        assert {tiers[m.tier_id] for m in members if m.tier_id} >= {"Member", "Silver"}
        for member in members:
            assert member.balance == ledger_sums(session, program.id or 0, member.profile_id)["balance"] >= 0
        assert [r.name for r in session.exec(select(Reward).order_by(Reward.cost))] == [
            "Free coffee", "10 EUR voucher", "Tessera tote bag"
        ]  # fmt: skip
