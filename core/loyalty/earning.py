"""Applying earning rules to events, and taking back what refunded or cancelled orders earned.

For each event, every active rule on its name whose filters hold and whose profile condition the
profile matches earns: fixed points, or points per unit of an amount property. Multiplier rules
that hold multiply the others (several multiply together), and so does the member's tier unless
the rule opts out. Each rule's points are rounded by the program's rounding, then bounded by the
rule's caps per day and per month (in the tenant's zone). A rule applies to events that happened
while it was active, so a replay, a late event or a retry earns exactly what the first pass did.

Profile conditions are decided as the profile is when the event is applied, not as it was when
the event happened.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session

from core.db.bulk import select_in
from core.ingest.models import Event, EventStatus
from core.loyalty.expiry import expires_at
from core.loyalty.ledger import LEDGER, Posting
from core.loyalty.models import (
    AppliedEvent,
    EntryKind,
    LoyaltyProgram,
    Rounding,
    RuleKind,
    RuleStatus,
    TierBasis,
)
from core.loyalty.programs import CompiledRule
from core.loyalty.state import EventRow, MemberState
from core.loyalty.tiers import program_tiers
from core.segments import rules as r
from core.segments.clock import Clock
from core.segments.evaluate import Facts, evaluate, load_facts, needs_of
from core.segments.semantics import is_number, json_matches

# An event may carry a device's clock, a little behind ours: it still earns on a rule activated
# just before it arrived.
SKEW = timedelta(hours=1)
EVENT = Event.__table__  # type: ignore[attr-defined]
APPLIED = AppliedEvent.__table__  # type: ignore[attr-defined]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def round_points(value: float, rounding: Rounding) -> int:
    """Whole points from a fractional amount, by the program's rounding."""
    if rounding == Rounding.up:
        return math.ceil(value - 1e-9)
    if rounding == Rounding.nearest:
        return math.floor(value + 0.5)
    return math.floor(value + 1e-9)


@dataclass
class _Caps:
    """What each capped rule already earned each member this day and this month."""

    zone: ZoneInfo
    day: defaultdict[tuple[int, str, str], int]
    month: defaultdict[tuple[int, str, str], int]

    def keys(
        self, rule_id: int, profile_id: str, at: datetime
    ) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
        local = at.astimezone(self.zone)
        return (rule_id, profile_id, f"{local:%Y-%m-%d}"), (rule_id, profile_id, f"{local:%Y-%m}")


def _load_caps(
    session: Session, program: LoyaltyProgram, rules: Sequence[CompiledRule], rows: Sequence[EventRow],
    zone: ZoneInfo,
) -> _Caps:  # fmt: skip
    caps = _Caps(zone, defaultdict(int), defaultdict(int))
    capped = [c.rule.id for c in rules if c.rule.cap_per_day or c.rule.cap_per_month]
    events = {c.rule.event for c in rules if c.rule.cap_per_day or c.rule.cap_per_month}
    rows = [row for row in rows if row.event in events]
    if not capped or not rows:
        return caps
    earliest = min(row.timestamp for row in rows).astimezone(zone)
    since = earliest.replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    query = sa.select(LEDGER.c.rule_id, LEDGER.c.profile_id, LEDGER.c.occurred_at, LEDGER.c.points).where(
        LEDGER.c.program_id == program.id,
        LEDGER.c.kind == EntryKind.earn,
        LEDGER.c.rule_id.in_(capped),
        LEDGER.c.occurred_at >= since,
    )
    profiles = {row.profile_id for row in rows}
    for found in select_in(session.connection(), query, LEDGER.c.profile_id, profiles, pg_type="text"):
        day, month = caps.keys(found.rule_id, found.profile_id, _aware(found.occurred_at))
        caps.day[day] += found.points
        caps.month[month] += found.points
    return caps


def _profile_facts(
    session: Session, rules: Sequence[CompiledRule], rows: Sequence[EventRow], clock: Clock
) -> dict[str, Facts]:
    conditions = [c.profile for c in rules if c.profile is not None]
    if not conditions:
        return {}
    return load_facts(session, {row.profile_id for row in rows}, needs_of(conditions, clock))


@dataclass(frozen=True, slots=True)
class _Plan:
    """A live rule, read once into plain values (the loop below runs per event and per rule)."""

    id: int
    name: str
    kind: RuleKind
    points: float
    amount_property: str
    tier_multiplier: bool
    cap_day: int | None
    cap_month: int | None
    since: datetime
    starts: datetime | None
    ends: datetime | None
    where: tuple[r.Trait, ...]
    profile: r.Rule | None

    def holds(self, row: EventRow, clock: Clock, facts: Mapping[str, Facts]) -> bool:
        """Whether the rule is live at the event's time, its filters hold and the profile matches."""
        at = row.timestamp
        if (
            at < self.since
            or (self.starts is not None and at < self.starts)
            or (self.ends is not None and at >= self.ends)
        ):
            return False
        properties = row.properties
        if not all(json_matches(f.test, properties.get(f.key), clock) for f in self.where):
            return False
        return self.profile is None or (
            row.profile_id in facts and evaluate(self.profile, facts[row.profile_id], clock)
        )


def _plans(program: LoyaltyProgram, rules: Sequence[CompiledRule]) -> dict[str, list[_Plan]]:
    by_event: dict[str, list[_Plan]] = defaultdict(list)
    for compiled in rules:
        rule = compiled.rule
        if rule.status != RuleStatus.active or rule.activated_at is None:
            continue
        assert rule.id is not None
        by_event[rule.event].append(_Plan(
            rule.id, rule.name, RuleKind(rule.kind), rule.points, rule.amount_property or program.amount_property,
            rule.tier_multiplier, rule.cap_per_day, rule.cap_per_month, _aware(rule.activated_at) - SKEW,
            _aware(rule.starts_at) if rule.starts_at else None, _aware(rule.ends_at) if rule.ends_at else None,
            compiled.where, compiled.profile,
        ))  # fmt: skip
    return by_event


def _amount(value: Any) -> float | None:
    return float(value) if value is not None and is_number(value) else None


def earn(
    session: Session,
    program: LoyaltyProgram,
    rules: Sequence[CompiledRule],
    rows: Sequence[EventRow],
    members: Mapping[str, MemberState],
    zone: ZoneInfo,
) -> list[Posting]:
    """The earn postings of ``rows`` under ``rules`` (the members' current tiers multiply)."""
    assert program.id is not None
    clock = Clock.at(zone)
    by_event = _plans(program, rules)
    rows = [row for row in rows if row.event in by_event]
    if not rows:
        return []
    live = [c for c in rules if c.rule.event in by_event]
    facts = _profile_facts(session, live, rows, clock)
    caps = _load_caps(session, program, live, rows, zone)
    multipliers = {t.id: t.multiplier for t in program_tiers(session, program.id)}
    spend = program.tier_basis == TierBasis.spend
    postings: list[Posting] = []
    for row in rows:
        matched = [plan for plan in by_event[row.event] if plan.holds(row, clock, facts)]
        if not matched:
            continue
        member = members.get(row.profile_id)
        factor = math.prod(p.points for p in matched if p.kind == RuleKind.multiplier)
        tier_factor = multipliers.get(member.tier_id, 1.0) if member and member.tier_id else 1.0
        properties = row.properties
        amount = _amount(properties.get(program.amount_property))
        details = {"event": row.event, **({"amount": amount} if amount is not None else {})}
        order_id, lapse = _order_id(row), expires_at(program, row.timestamp)
        first = True
        for plan in matched:
            if plan.kind == RuleKind.multiplier:
                continue
            if plan.kind == RuleKind.per_amount:
                base = _amount(properties.get(plan.amount_property))
                if base is None or base <= 0:
                    continue
                raw = base * plan.points
            else:
                raw = plan.points
            points = round_points(
                raw * factor * (tier_factor if plan.tier_multiplier else 1.0), program.rounding
            )
            if plan.cap_day is not None or plan.cap_month is not None:
                day, month = caps.keys(plan.id, row.profile_id, row.timestamp)
                if plan.cap_day is not None:
                    points = min(points, plan.cap_day - caps.day[day])
                if plan.cap_month is not None:
                    points = min(points, plan.cap_month - caps.month[month])
                if points > 0:
                    caps.day[day] += points
                    caps.month[month] += points
            if points <= 0:
                continue
            if spend:  # spend counts once per event, with its first earning
                qualifying = amount if first and amount is not None and amount > 0 else 0.0
            else:
                qualifying = float(points)
            first = False
            postings.append(
                Posting(
                    profile_id=row.profile_id, points=points, kind=EntryKind.earn,
                    key=f"earn:{plan.id}:{row.message_id}", qualifying=qualifying, rule_id=plan.id,
                    event_id=row.id, order_id=order_id, reason=plan.name, occurred_at=row.timestamp,
                    expires_at=lapse, details=details,
                )
            )  # fmt: skip
    return postings


def _order_id(row: EventRow) -> str | None:
    value = row.properties.get("order_id")
    return str(value)[:200] if value is not None and value != "" else None


def reversals(
    session: Session, program: LoyaltyProgram, rows: Iterable[EventRow], only: Collection[int] | None = None
) -> list[Posting]:
    """Postings that take back what the refunded or cancelled orders of ``rows`` earned (only the
    entries ``only`` names, if given).

    A refund carrying an amount takes back that share of the order (a partial refund); without
    one, everything the order earned. What was already taken back is never taken twice.
    """
    refunds = [row for row in rows if row.event in program.refund_events and _order_id(row)]
    if not refunds:
        return []
    orders = {_order_id(row) for row in refunds}
    earned = sa.select(LEDGER).where(LEDGER.c.program_id == program.id, LEDGER.c.kind == EntryKind.earn)
    entries = list(select_in(session.connection(), earned, LEDGER.c.order_id, orders, pg_type="text"))
    if only is not None:
        entries = [entry for entry in entries if entry.id in only]
    if not entries:
        return []
    taken_back: defaultdict[int, int] = defaultdict(int)
    back = sa.select(LEDGER.c.reverses_id, LEDGER.c.points, LEDGER.c.details).where(
        LEDGER.c.kind == EntryKind.reverse
    )
    for found in select_in(
        session.connection(), back, LEDGER.c.reverses_id, [e.id for e in entries], pg_type="integer"
    ):
        taken_back[found.reverses_id] += -found.points + int(found.details.get("uncovered", 0))
    by_order: defaultdict[str, list[sa.Row]] = defaultdict(list)
    for entry in entries:
        by_order[entry.order_id].append(entry)
    postings: list[Posting] = []
    for row in refunds:
        order = _order_id(row)
        refund_amount = _amount(row.properties.get(program.amount_property))
        for entry in by_order.get(order or "", []):
            order_amount = entry.details.get("amount")
            share = 1.0
            if refund_amount is not None and is_number(order_amount) and order_amount > 0:
                share = min(1.0, refund_amount / float(order_amount))
            left = entry.points - taken_back[entry.id]
            points = min(left, round_points(entry.points * share, Rounding.nearest))
            if points <= 0:
                continue
            taken_back[entry.id] += points
            postings.append(
                Posting(
                    profile_id=entry.profile_id, points=-points, kind=EntryKind.reverse,
                    key=f"reverse:{entry.id}:{row.message_id}", qualifying=-entry.qualifying * points / entry.points,
                    rule_id=entry.rule_id, event_id=row.id, order_id=order, reverses_id=entry.id,
                    reason=f"{row.event}: order {order}", occurred_at=row.timestamp,
                    details={"event": row.event},
                )
            )  # fmt: skip
    return postings


def earlier_refunds(
    session: Session, program: LoyaltyProgram, earned: Sequence[dict[str, Any]], skip: Collection[int]
) -> list[EventRow]:
    """The refunds of the orders that just earned (``earned`` entries) that the program applied
    before their purchase, read from the events (``skip``: event ids being applied now)."""
    orders = {entry["order_id"] for entry in earned if entry["order_id"]}
    if not orders or not program.refund_events:
        return []
    profiles = {entry["profile_id"] for entry in earned if entry["order_id"]}
    query = sa.select(EVENT.c.id, EVENT.c.message_id, EVENT.c.event, EVENT.c.profile_id, EVENT.c.properties,
                      EVENT.c.timestamp).where(
        EVENT.c.type == "track", EVENT.c.status == EventStatus.processed, EVENT.c.event.in_(program.refund_events),
        # applied already: a refund still to come takes back what it must when it is applied
        sa.exists().where(APPLIED.c.program_id == program.id, APPLIED.c.event_id == EVENT.c.id),
    )  # fmt: skip
    found = []
    for row in select_in(session.connection(), query, EVENT.c.profile_id, profiles, pg_type="text"):
        refund = EventRow(
            row.id, row.message_id, row.event, row.profile_id, row.properties or {}, _aware(row.timestamp)
        )
        if row.id not in skip and _order_id(refund) in orders:
            found.append(refund)
    return found
