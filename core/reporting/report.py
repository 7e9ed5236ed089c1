"""Delivery reports: per campaign, per journey, per journey step; totals and over time.

Every figure is a count of delivery rows (test sends excluded) by state, reason or lifecycle
timestamp, in one query per report: nothing is counted separately, so nothing can drift.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session

from core.delivery.models import Delivery, DeliveryState

DELIVERY = Delivery.__table__  # type: ignore[attr-defined]
# Report key -> the delivery timestamp that says it happened.
MOMENTS = {
    "sent": "sent_at",
    "delivered": "delivered_at",
    "opened": "opened_at",
    "clicked": "clicked_at",
    "installed": "installed_at",
    "removed": "removed_at",
    "converted": "converted_at",
    "failed": "failed_at",
}
KEYS = ("targeted", "suppressed", "pending", "sent", "delivered", "failed", "opened", "clicked", "installed",
        "removed", "converted")  # fmt: skip


@dataclass
class Report:
    """The figures of one report. ``suppressed`` and ``failed`` are by reason."""

    targeted: int = 0
    pending: int = 0
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    installed: int = 0
    removed: int = 0
    converted: int = 0
    suppressed: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    # Per day (in the tenant's zone): {"2026-11-30": {"sent": 10, "opened": 3, ...}}
    over_time: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The report in the shape of the JSON API (keys as the API documents them)."""
        return {
            "targeted": self.targeted, "suppressed": dict(self.suppressed), "pending": self.pending,
            "sent": self.sent, "delivered": self.delivered, "failed": dict(self.failed),
            "opened": self.opened, "clicked": self.clicked, "installed": self.installed,
            "removed": self.removed, "converted": self.converted, "over_time": self.over_time,
        }  # fmt: skip

    def rate(self, key: str) -> float | None:
        """``key`` as a share of sent messages (None before anything was sent)."""
        return getattr(self, key) / self.sent if self.sent else None


def _scope(where: dict[str, Any]) -> list[Any]:
    conditions = [DELIVERY.c.test.is_(False)]
    for name, value in where.items():
        conditions.append(DELIVERY.c[name] == value)
    return conditions


def report(session: Session, zone: str = "UTC", **where: Any) -> Report:
    """The report of the deliveries matching ``where`` (``campaign_id=``, ``journey_id=``, ``step=``)."""
    conditions = _scope(where)
    connection = session.connection()
    counts: list[Any] = [sa.func.count()] + [sa.func.count(DELIVERY.c[column]) for column in MOMENTS.values()]
    counts.append(sa.func.count().filter(DELIVERY.c.state == DeliveryState.queued))
    row = connection.execute(sa.select(*counts).where(*conditions)).one()
    found = Report(targeted=int(row[0]), pending=int(row[-1]))
    for index, key in enumerate(MOMENTS, start=1):
        if key != "failed":
            setattr(found, key, int(row[index]))
    by_reason = (
        sa.select(DELIVERY.c.state, DELIVERY.c.reason, sa.func.count())
        .where(*conditions, DELIVERY.c.state.in_([DeliveryState.suppressed, DeliveryState.failed]))
        .group_by(DELIVERY.c.state, DELIVERY.c.reason)
    )
    for state, reason, number in connection.execute(by_reason):
        target = found.suppressed if state == DeliveryState.suppressed else found.failed
        target[reason or "unknown"] = target.get(reason or "unknown", 0) + int(number)
    found.suppressed, found.failed = (
        dict(sorted(found.suppressed.items())),
        dict(sorted(found.failed.items())),
    )
    found.over_time = over_time(session, zone, **where)
    return found


def over_time(session: Session, zone: str = "UTC", **where: Any) -> dict[str, dict[str, int]]:
    """Per day in ``zone``, how many deliveries reached each moment (sent, delivered, opened...)."""
    conditions = _scope(where)
    connection = session.connection()
    days: dict[date, dict[str, int]] = {}
    for key, column in MOMENTS.items():
        moment = DELIVERY.c[column]
        if connection.dialect.name == "postgresql":
            day = sa.func.date(sa.func.timezone(zone, moment))
            query = sa.select(day, sa.func.count()).where(*conditions, moment.is_not(None)).group_by(day)
            counted = [(found, int(number)) for found, number in connection.execute(query)]
        else:  # SQLite knows no time zones: the days are counted here
            tz = ZoneInfo(zone)
            per_day: dict[date, int] = {}
            for (at,) in connection.execute(sa.select(moment).where(*conditions, moment.is_not(None))):
                local = _aware(at).astimezone(tz).date()
                per_day[local] = per_day.get(local, 0) + 1
            counted = list(per_day.items())
        for found, number in counted:
            days.setdefault(found, {})[key] = number
    return {day.isoformat(): dict(sorted(values.items())) for day, values in sorted(days.items())}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo("UTC"))


def campaign_totals(session: Session, campaign_ids: Collection[int]) -> dict[int, tuple[int, int]]:
    """(targeted, sent) of many campaigns in one query, for lists (a full report each would not scale)."""
    if not campaign_ids:
        return {}
    query = (
        sa.select(DELIVERY.c.campaign_id, sa.func.count(), sa.func.count(DELIVERY.c.sent_at))
        .where(*_scope({}), DELIVERY.c.campaign_id.in_(list(campaign_ids)))
        .group_by(DELIVERY.c.campaign_id)
    )
    return {cid: (int(total), int(sent)) for cid, total, sent in session.connection().execute(query)}


def channels_reported(session: Session) -> list[str]:
    """The channels that have deliveries (test sends aside), by key."""
    query = sa.select(DELIVERY.c.channel).where(*_scope({})).group_by(DELIVERY.c.channel)
    return sorted(channel for (channel,) in session.connection().execute(query))


def step_reports(session: Session, journey_id: int, zone: str = "UTC") -> dict[str, Report]:
    """A report per step of a journey that sent something, by step key."""
    query = sa.select(DELIVERY.c.step).where(*_scope({"journey_id": journey_id})).group_by(DELIVERY.c.step)
    steps = [step for (step,) in session.connection().execute(query) if step]
    return {step: report(session, zone, journey_id=journey_id, step=step) for step in sorted(steps)}


def csv_rows(found: Report) -> list[dict[str, Any]]:
    """The report as CSV rows: one per day with every moment, then the totals and reasons."""
    rows: list[dict[str, Any]] = []
    for day, values in found.over_time.items():
        rows.append({"day": day, **{key: values.get(key, 0) for key in MOMENTS}})
    totals = {key: getattr(found, key) for key in MOMENTS if key != "failed"}
    rows.append({"day": "total", **totals, "failed": sum(found.failed.values())})
    return rows


def journey_csv_rows(session: Session, journey_id: int, zone: str = "UTC") -> list[dict[str, Any]]:
    """A journey's report as CSV rows: the whole journey, then each step that sent (``step`` column)."""
    rows = [{"step": "all", **row} for row in csv_rows(report(session, zone, journey_id=journey_id))]
    for step, found in step_reports(session, journey_id, zone).items():
        rows.extend({"step": step, **row} for row in csv_rows(found))
    return rows


def as_csv(rows: list[dict[str, Any]]) -> str:
    """CSV text of report rows (the first row's keys are the header)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
