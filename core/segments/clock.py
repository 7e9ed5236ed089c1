"""The moment a rule is evaluated at, and the tenant's calendar days around it.

Both the SQL and the per-profile paths take the same :class:`Clock`, so "within the last 7 days"
means the same instants on both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from core.db.base import utcnow


@dataclass(frozen=True)
class Clock:
    """``now`` (aware) in the tenant's time zone ``zone``."""

    now: datetime
    zone: ZoneInfo

    @classmethod
    def at(cls, zone: str | ZoneInfo = "UTC", now: datetime | None = None) -> Clock:
        """A clock for the tenant's zone, at ``now`` (default: the current time)."""
        return cls(
            now=(now or utcnow()).astimezone(UTC), zone=zone if isinstance(zone, ZoneInfo) else ZoneInfo(zone)
        )

    @property
    def today(self) -> date:
        """The tenant's calendar date at ``now``."""
        return self.now.astimezone(self.zone).date()

    def start_of(self, day: date) -> datetime:
        """The first instant of ``day`` in the tenant's zone, in UTC."""
        return datetime.combine(day, time(), self.zone).astimezone(UTC)

    def days_ago(self, days: int) -> date:
        """The date ``days`` before today (negative: after)."""
        return self.today - timedelta(days=days)
