"""A member's state as the ledger holds it while posting, and the tier moves it makes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.loyalty.models import EntryKind


@dataclass
class MemberState:
    """A member's row as :func:`post` holds it: the ledger sums, tier and tier period."""

    profile_id: str
    balance: int = 0
    earned: int = 0
    redeemed: int = 0
    expired: int = 0
    tier_id: int | None = None
    tier_since: datetime | None = None
    period: int = 0
    qualifying: float = 0
    new: bool = False

    def apply(self, kind: EntryKind, points: int) -> None:
        """Add one entry's points to the sums they belong to."""
        self.balance += points
        if kind in (EntryKind.redeem, EntryKind.refund):
            self.redeemed -= points
        elif kind == EntryKind.expire:
            self.expired -= points
        else:
            self.earned += points


@dataclass
class TierMove:
    """A member's tier changed (``before``/``after`` are tier ids, None: no tier)."""

    profile_id: str
    before: int | None
    after: int | None
    at: datetime


@dataclass(frozen=True)
class EventRow:
    """A processed track event as loyalty reads it from the stream (``timestamp`` is aware)."""

    id: int
    message_id: str
    event: str
    profile_id: str
    properties: dict[str, Any]
    timestamp: datetime
