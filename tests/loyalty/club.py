"""A shop tenant with one loyalty program ("Club"), and helpers to give points, add rewards and
read what loyalty recorded (balances, ledger sums, internal events)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlmodel import Session, col, select

from core.db.engines import tenant_engine
from core.internal_events.models import InternalEvent
from core.loyalty import ledger
from core.loyalty.ledger import Posting
from core.loyalty.models import EntryKind, LoyaltyMember, LoyaltyProgram, Reward, Tier
from core.loyalty.rewards import RewardIn, create_reward

TENANT = "shop"
ACTOR = "till@shop.test"


@dataclass
class Club:
    """The tenant's database, a session on it and its loyalty program."""

    installation: Any
    database: str
    session: Session
    program: LoyaltyProgram
    token: str

    @property
    def program_id(self) -> int:
        assert self.program.id is not None
        return self.program.id

    def new_session(self) -> Session:
        """Another session on the tenant's database (another connection)."""
        return Session(tenant_engine(self.database), expire_on_commit=False)

    def give(self, profile_id: str, points: int, qualifying: float = 0) -> None:
        """Add points to a member's balance (an adjustment), committed; makes them a member."""
        count = len(ledger.entries_of(self.session, self.program_id, profile_id, limit=10_000))
        posting = Posting(profile_id, points, EntryKind.adjust, key=f"test:{profile_id}:{count}",
                          qualifying=qualifying, actor=ACTOR, reason="test")  # fmt: skip
        ledger.post(self.session, self.program, [posting])
        self.session.commit()

    def balance(self, profile_id: str) -> int:
        """The member's cached balance, checked against the sum of their ledger."""
        self.session.expire_all()
        member = self.session.get(LoyaltyMember, (self.program_id, profile_id))
        assert member is not None
        assert member.balance == ledger.ledger_sums(self.session, self.program_id, profile_id)["balance"]
        return member.balance

    def reward(self, name: str = "Free coffee", cost: int = 100, **settings: Any) -> Reward:
        """A reward of the catalogue, committed."""
        reward = create_reward(
            self.session, self.program_id, RewardIn(name=name, cost=cost, **settings), ACTOR
        )
        self.session.commit()
        return reward

    def tier(self, name: str, threshold: float) -> Tier:
        """A tier of the program, committed."""
        tier = Tier(program_id=self.program_id, name=name, threshold=threshold)
        self.session.add(tier)
        self.session.commit()
        return tier

    def events(self, name: str) -> list[InternalEvent]:
        """The internal events of one name, oldest first."""
        self.session.expire_all()
        query = select(InternalEvent).where(InternalEvent.name == name).order_by(col(InternalEvent.id))
        return list(self.session.exec(query))


def open_club(installation: Any) -> Iterator[Club]:
    """Create the tenant and its program; yield the club."""
    created = installation.tenant(TENANT)
    with Session(tenant_engine(created.tenant.database), expire_on_commit=False) as session:
        program = LoyaltyProgram(key="club", name="Club")
        session.add(program)
        session.commit()
        yield Club(installation, created.tenant.database, session, program, created.api_token)


@pytest.fixture
def club(installation) -> Iterator[Club]:
    """The club on SQLite and on PostgreSQL."""
    yield from open_club(installation)


@pytest.fixture
def sqlite_club(sqlite_installation) -> Iterator[Club]:
    """The club on SQLite only (for what does not depend on the database)."""
    yield from open_club(sqlite_installation)


@pytest.fixture
def postgres_club(postgres_installation) -> Iterator[Club]:
    """The club on PostgreSQL (concurrency: row locks)."""
    yield from open_club(postgres_installation)
