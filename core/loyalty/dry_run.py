""" "Test this rule on a profile": what a rule would earn a profile for an event, and why, without
recording anything.

The event is the profile's latest event of the rule's name, or one the marketer writes. Every
check is reported (filters, profile condition, dates, caps), so a rule that earns nothing says
which part stopped it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from core.db.base import utcnow
from core.ingest.models import Event, EventStatus
from core.loyalty.earning import earn
from core.loyalty.ledger import lock_members
from core.loyalty.models import EarningRule, LoyaltyProgram, RuleKind, RuleStatus
from core.loyalty.programs import CompiledRule, RuleIn, parse_conditions
from core.loyalty.state import EventRow
from core.plugin_api import SegmentConditionType
from core.profiles.models import Profile
from core.segments.clock import Clock
from core.segments.evaluate import evaluate, load_facts, needs_of
from core.segments.semantics import json_matches


@dataclass(frozen=True)
class Check:
    """One condition of the rule, whether it held, and in words."""

    label: str
    passed: bool
    detail: str = ""


@dataclass
class DryRun:
    """What the rule would do for the profile and the event."""

    points: int = 0
    event: dict[str, Any] | None = None
    checks: list[Check] = field(default_factory=list)
    note: str = ""


def _latest_event(session: Session, profile_id: str, name: str) -> Event | None:
    query = (
        select(Event)
        .where(Event.profile_id == profile_id, Event.event == name, Event.status == EventStatus.processed)
        .order_by(col(Event.timestamp).desc())
        .limit(1)
    )
    return session.exec(query).first()


def dry_run(
    session: Session,
    program: LoyaltyProgram,
    body: RuleIn,
    profile_id: str,
    conditions: Mapping[str, SegmentConditionType],
    zone: ZoneInfo,
    properties: dict[str, Any] | None = None,
    rule_id: int | None = None,
) -> DryRun:
    """What ``body`` would earn ``profile_id`` now, for ``properties`` or their latest such event.

    With the ``rule_id`` of a saved rule, what it already earned counts against its caps.

    Nothing is written: the transaction is rolled back by the caller (members are locked, and
    may be created, to read their tier).
    """
    result = DryRun()
    profile = session.get(Profile, profile_id)
    if profile is None or profile.merged_into:
        result.note = "No such profile."
        return result
    where, profile_rule = parse_conditions(session, body, conditions)
    now = utcnow()
    if properties is None:
        found = _latest_event(session, profile_id, body.event)
        if found is None:
            result.note = f"The profile has no {body.event!r} event: write one to test with."
            return result
        properties = found.properties or {}
        at = found.timestamp if found.timestamp.tzinfo else found.timestamp.replace(tzinfo=UTC)
        result.note = f"Tested on the profile's latest {body.event!r} event ({at:%Y-%m-%d %H:%M})."
    else:
        at = now
        result.note = "Tested on the event you wrote, as if it happened now."
    result.event = {"event": body.event, "properties": properties, "timestamp": at.isoformat()}
    clock = Clock.at(zone)
    for f in where:
        value = properties.get(f.key)
        result.checks.append(Check(f"{f.key} {f.test.op} {f.test.value!r}".replace(" None", ""),
                                   json_matches(f.test, value, clock), f"the event has {value!r}"))  # fmt: skip
    if profile_rule is not None:
        facts = load_facts(session, [profile_id], needs_of([profile_rule], clock))
        held = profile_id in facts and evaluate(profile_rule, facts[profile_id], clock)
        result.checks.append(Check("the profile matches the profile condition", held))
    in_dates = (body.starts_at is None or at >= body.starts_at) and (
        body.ends_at is None or at < body.ends_at
    )
    result.checks.append(Check("the event falls within the rule's dates", in_dates))
    if not all(check.passed for check in result.checks):
        return result
    if body.kind == RuleKind.multiplier:
        result.note += f" A multiplier rule earns nothing itself: it multiplies what other rules earn by {body.points:g}."
        return result
    rule = EarningRule(id=rule_id or 0, program_id=program.id or 0, status=RuleStatus.active, activated_at=at,
                       **body.model_dump(exclude={"starts_at", "ends_at"}))  # fmt: skip
    compiled = CompiledRule(rule, where, None)  # the profile condition was checked above
    row = EventRow(0, "dry-run", body.event, profile_id, properties, at)
    members = lock_members(session, program, [profile_id], create=False)
    postings = earn(session, program, [compiled], [row], members, zone)
    result.points = sum(p.points for p in postings)
    if body.cap_per_day or body.cap_per_month:
        result.checks.append(Check("within the rule's caps", bool(postings)))
    return result
