"""Segments as marketers and the API use them: save, change, archive, count, sample, list, reach.

Every rule is checked with :func:`core.segments.rules.parse_rule` against the tenant's other
segments (no cycles, no missing ones), its loyalty programs and its enabled plugins' condition
types before it is stored. Counts and samples run the rule's SQL live; member lists read the
stored memberships, which :mod:`core.segments.membership` keeps current.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.db.base import utcnow
from core.loyalty.models import LoyaltyProgram, ProgramStatus, Tier
from core.plugin_api import Channel, SegmentConditionType
from core.plugins import get_host
from core.profiles.models import Identity, Profile
from core.segments import rules as r
from core.segments.clock import Clock
from core.segments.models import Segment, SegmentMembership, SegmentSize
from core.segments.sql import CONSENT, count_query, give_room, members_query
from core.tenancy.models import Tenant
from core.tenancy.plugin_settings import enabled_plugins

NAME_LENGTH = 200
SAMPLE = 10
MAX_PAGE = 1000
IDENTITY = Identity.__table__  # type: ignore[attr-defined]


class SegmentNotFound(LookupError):
    """No segment with that id in this tenant (or it is archived)."""


class SegmentConflict(ValueError):
    """The change would break something: a name taken, a segment others refer to."""


def conditions_for(enabled: set[str] | frozenset[str]) -> dict[str, SegmentConditionType]:
    """The segment condition types of the plugins a tenant enabled, by key."""
    return {key: reg.item for key, reg in get_host().segment_conditions.items() if reg.plugin in enabled}


@dataclass(frozen=True)
class TenantScope:
    """What evaluating a tenant's segments depends on: its clock, plugin condition types, channels."""

    clock: Clock
    conditions: dict[str, SegmentConditionType]
    channels: dict[str, Channel]
    enabled: frozenset[str]


def tenant_scope(control: Session, tenant: Tenant) -> TenantScope:
    """The scope of ``tenant`` now, from its time zone and enabled plugins (control database)."""
    host = get_host()
    enabled = frozenset(enabled_plugins(control, tenant, host))
    return TenantScope(
        Clock.at(tenant.timezone), conditions_for(enabled), host.channels_for(enabled), enabled
    )


def active_segments(session: Session) -> list[Segment]:
    """Segments that are not archived, by name."""
    query = select(Segment).where(col(Segment.archived_at).is_(None)).order_by(col(Segment.name))
    return list(session.exec(query))


def get_segment(session: Session, segment_id: int) -> Segment:
    """The active segment, or :class:`SegmentNotFound`."""
    segment = session.get(Segment, segment_id)
    if segment is None or segment.archived_at is not None:
        raise SegmentNotFound(f"No segment {segment_id}.")
    return segment


def loyalty_programs(session: Session) -> dict[int, r.LoyaltyProgramRef]:
    """Every loyalty program of the tenant (archived ones too), by id, with its tiers lowest first."""
    tiers: dict[int, list[str]] = {}
    for tier in session.exec(select(Tier).order_by(col(Tier.threshold), col(Tier.id))):
        tiers.setdefault(tier.program_id, []).append(tier.name)
    programs = session.exec(select(LoyaltyProgram).order_by(col(LoyaltyProgram.id))).all()
    return {
        program.id: r.LoyaltyProgramRef(
            program.id, program.key, program.name, program.status == ProgramStatus.active,
            tuple(tiers.get(program.id, ())),
        )
        for program in programs
        if program.id is not None
    }  # fmt: skip


def check_rule(
    session: Session,
    data: Any,
    conditions: Mapping[str, SegmentConditionType],
    self_id: int | None = None,
) -> r.Rule:
    """The parsed rule; :class:`~core.segments.rules.RuleError` if it is invalid for this tenant."""
    stored = {s.id: s.rule for s in active_segments(session)}

    @cache
    def programs() -> dict[int, r.LoyaltyProgramRef]:  # read only for rules that name a program
        return loyalty_programs(session)

    context = r.RuleContext(segment_rule=stored.get, self_id=self_id, conditions=conditions,
                            loyalty_program=lambda program_id: programs().get(program_id))  # fmt: skip
    return r.parse_rule(data, context)


def _check_name(session: Session, name: str, segment_id: int | None) -> str:
    name = name.strip()
    if not name or len(name) > NAME_LENGTH:
        raise r.RuleError([r.Problem("name", f"give a name of 1-{NAME_LENGTH} characters")])
    taken = session.exec(select(Segment).where(Segment.name == name)).first()
    if taken is not None and taken.id != segment_id:
        raise SegmentConflict(f"A segment named {name!r} already exists.")
    return name


def create_segment(
    session: Session,
    name: str,
    rule: Any,
    actor: str,
    conditions: Mapping[str, SegmentConditionType],
    description: str = "",
) -> Segment:
    """Store a new segment (checked; flushed, not committed). Its members are evaluated by a job."""
    name = _check_name(session, name, None)
    check_rule(session, rule, conditions)
    segment = Segment(name=name, description=description.strip()[:2000], rule=rule, created_by=actor,
                      updated_by=actor)  # fmt: skip
    session.add(segment)
    session.flush()
    _changed()
    return segment


def update_segment(
    session: Session,
    segment_id: int,
    actor: str,
    conditions: Mapping[str, SegmentConditionType],
    *,
    name: str | None = None,
    rule: Any = None,
    description: str | None = None,
) -> Segment:
    """Change a segment's name, description or rule (checked, so it cannot come to refer to itself)."""
    segment = get_segment(session, segment_id)
    if name is not None:
        segment.name = _check_name(session, name, segment_id)
    if rule is not None:
        check_rule(session, rule, conditions, self_id=segment_id)
        segment.rule = rule
    if description is not None:
        segment.description = description.strip()[:2000]
    segment.updated_at, segment.updated_by = utcnow(), actor
    session.add(segment)
    session.flush()
    _changed()
    return segment


def _changed() -> None:
    from core.segments.membership import forget_versions  # membership builds on this module

    forget_versions()


def referrers(session: Session, segment_id: int) -> list[Segment]:
    """Active segments whose rule names ``segment_id``."""

    def names(data: Any) -> bool:
        if isinstance(data, dict):
            if data.get("type") == "segment" and data.get("segment") == segment_id:
                return True
            return any(names(v) for v in data.values())
        return isinstance(data, list) and any(names(v) for v in data)

    return [s for s in active_segments(session) if s.id != segment_id and names(s.rule)]


def archive_segment(session: Session, segment_id: int, actor: str) -> Segment:
    """Stop evaluating a segment; refused while other segments refer to it. Members exit."""
    from core.segments.membership import close_memberships

    segment = get_segment(session, segment_id)
    users = referrers(session, segment_id)
    if users:
        raise SegmentConflict(f"Segment {segment.name!r} is used by: {', '.join(s.name for s in users)}.")
    segment.archived_at, segment.updated_at, segment.updated_by = utcnow(), utcnow(), actor
    session.add(segment)
    close_memberships(session, segment)
    _changed()
    return segment


def count(session: Session, rule: r.Rule, clock: Clock) -> int:
    """How many active profiles match ``rule`` now (live, in SQL)."""
    dialect = session.get_bind().dialect.name
    give_room(session)
    return int(session.connection().execute(count_query(rule, dialect, clock)).scalar_one())


def sample(session: Session, rule: r.Rule, clock: Clock, limit: int = SAMPLE) -> list[Profile]:
    """Some matching profiles (the most recently seen first)."""
    give_room(session)
    members = members_query(rule, session.get_bind().dialect.name, clock).subquery()
    query = (
        select(Profile)
        .where(col(Profile.id).in_(sa.select(members.c.id)))
        .order_by(col(Profile.last_seen).desc().nulls_last(), col(Profile.id))
        .limit(limit)
    )
    return list(session.exec(query))


@dataclass(frozen=True)
class Reach:
    """How many members one channel can reach: consent granted and an address to send to."""

    channel: str
    label: str
    consented: int
    reachable: int
    address: str | None


def reach(session: Session, rule: r.Rule, clock: Clock, channels: Mapping[str, Channel]) -> list[Reach]:
    """Per channel: members with marketing consent for it, and of those, members with its address."""
    give_room(session)
    members = members_query(rule, session.get_bind().dialect.name, clock).subquery()
    found = []
    for key, channel in sorted(channels.items()):
        consented = sa.select(CONSENT.c.profile_id).where(
            CONSENT.c.channel == key, CONSENT.c.purpose == "marketing", CONSENT.c.granted.is_(True)
        )
        base = sa.select(sa.func.count()).select_from(members).where(members.c.id.in_(consented))
        address = channel.capabilities.address_identifier
        with_address = base
        if address:
            holders = sa.select(IDENTITY.c.profile_id).where(IDENTITY.c.type == address)
            with_address = base.where(members.c.id.in_(holders))
        connection = session.connection()
        n_consented = int(connection.execute(base).scalar_one())
        n_reachable = int(connection.execute(with_address).scalar_one()) if address else n_consented
        found.append(Reach(key, channel.label, n_consented, n_reachable, address))
    return found


@dataclass(frozen=True)
class MemberRow:
    """One current member, as lists and exports show it."""

    profile_id: str
    name: str
    entered_at: Any


def members(
    session: Session, segment_id: int, after: str | None = None, limit: int = 100
) -> tuple[list[MemberRow], str | None]:
    """A page of current members by profile id, after the cursor ``after``; (rows, next cursor)."""
    limit = max(1, min(limit, MAX_PAGE))
    query = (
        select(SegmentMembership.profile_id, Profile.display_name, SegmentMembership.entered_at)
        .join(Profile, col(Profile.id) == col(SegmentMembership.profile_id))
        .where(SegmentMembership.segment_id == segment_id, col(SegmentMembership.exited_at).is_(None))
        .order_by(col(SegmentMembership.profile_id))
        .limit(limit + 1)
    )
    if after:
        query = query.where(col(SegmentMembership.profile_id) > after)
    rows = [MemberRow(pid, name, at) for pid, name, at in session.exec(query)]
    return rows[:limit], (rows[limit - 1].profile_id if len(rows) > limit else None)


def export_rows(session: Session, segment_id: int) -> Iterator[dict[str, Any]]:
    """Every current member with their email and phone, for a CSV export (streamed by pages)."""
    after: str | None = None
    while True:
        page, after = members(session, segment_id, after, MAX_PAGE)
        ids = [row.profile_id for row in page]
        found: dict[str, dict[str, str]] = {}
        query = select(Identity).where(
            col(Identity.profile_id).in_(ids), col(Identity.type).in_(["email", "phone"])
        )
        for identity in session.exec(query.order_by(col(Identity.value))):
            found.setdefault(identity.profile_id, {}).setdefault(identity.type, identity.value)
        for row in page:
            ids_of = found.get(row.profile_id, {})
            yield {"profile_id": row.profile_id, "name": row.name, "email": ids_of.get("email", ""),
                   "phone": ids_of.get("phone", ""), "entered_at": row.entered_at.isoformat()}  # fmt: skip
        if after is None:
            return


def size_history(session: Session, segment_id: int, days: int = 90) -> list[tuple[date, int]]:
    """The segment's size per day over the last ``days`` days (days it was evaluated)."""
    since = utcnow().date() - timedelta(days=days)
    query = (
        select(SegmentSize)
        .where(SegmentSize.segment_id == segment_id, col(SegmentSize.day) >= since)
        .order_by(col(SegmentSize.day))
    )
    return [(row.day, row.size) for row in session.exec(query)]


def memberships_of(session: Session, profile_id: str) -> list[tuple[Segment, SegmentMembership]]:
    """A profile's current segments, with when it entered each."""
    query = (
        select(Segment, SegmentMembership)
        .join(SegmentMembership, col(SegmentMembership.segment_id) == col(Segment.id))
        .where(SegmentMembership.profile_id == profile_id, col(SegmentMembership.exited_at).is_(None))
        .order_by(col(Segment.name))
    )
    return [(segment, membership) for segment, membership in session.exec(query)]
