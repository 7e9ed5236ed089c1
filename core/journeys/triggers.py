"""What makes journeys move besides timers: the streams of events and internal events, and dates.

Two followers read a stream each past a stored cursor (:class:`~core.streams.cursor.
StreamCursor`): processed track events (event triggers, ``wait_for_event`` steps, journey goals,
and campaign goals), and internal events (segment entry and exit triggers). They run right after
each processing batch and from the periodic tick. Rows are handled in id order; the cursor only
passes rows written long enough ago (:data:`~core.streams.cursor.GRACE`) that no open transaction can still add a lower
id, so a row committed late is still seen; rows read again are harmless (an entry is made once per
trigger row, a wait and a goal only take events after their own position).

Date triggers run hourly: profiles whose date trait falls on today (plus ``days_before``) in the
tenant's zone enter once the local time passed ``at``, once per date.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.campaigns.models import Campaign, CampaignStatus
from core.db.base import utcnow
from core.db.engines import control_session, tenant_engine
from core.db.locks import transaction_lock
from core.delivery.statuses import record_conversions
from core.ingest.models import Event, EventStatus
from core.internal_events.models import InternalEvent
from core.internal_events.service import SEGMENT_ENTERED, SEGMENT_EXITED
from core.journeys import definition as d
from core.journeys.engine import Candidate, convert, enter_many, resume
from core.journeys.models import EntryState, Journey, JourneyEntry, JourneyStatus
from core.journeys.run import Run, Runtime, definition_of
from core.journeys.timers import write_lock
from core.profiles.models import Profile
from core.streams.cursor import advance, cursor_named
from core.tenancy.models import Tenant
from core.tenancy.tenants import get_tenant

log = logging.getLogger(__name__)
EVENT = Event.__table__  # type: ignore[attr-defined]
INTERNAL = InternalEvent.__table__  # type: ignore[attr-defined]
PROFILE = Profile.__table__  # type: ignore[attr-defined]
ENTRY = JourneyEntry.__table__  # type: ignore[attr-defined]
# An event counts for a journey only if it happened (its own timestamp) at most this long before
# the moment it would count from: a late event from an offline device counts, a backfill of last
# year's orders (a CSV import) does not enter anyone or end anyone's wait.
SKEW = timedelta(hours=1)
CHUNK = 5_000
EVENTS, INTERNALS = "events", "internal_events"
RuntimeSource = Runtime | str


@dataclass
class Interest:
    """What the followers look for, from the journeys and campaigns of the tenant now."""

    entering: defaultdict[str, list[Journey]] = field(default_factory=lambda: defaultdict(list))
    waiting: set[str] = field(default_factory=set)
    goals: defaultdict[str, list[Journey]] = field(default_factory=lambda: defaultdict(list))
    campaigns: defaultdict[str, list[tuple[int, int]]] = field(default_factory=lambda: defaultdict(list))
    segments: defaultdict[tuple[str, int], list[Journey]] = field(default_factory=lambda: defaultdict(list))
    journeys: dict[int, Journey] = field(default_factory=dict)

    @property
    def event_names(self) -> set[str]:
        """Track event names some journey or campaign cares about."""
        return set(self.entering) | self.waiting | set(self.goals) | set(self.campaigns)


def interest(session: Session) -> Interest:
    """What active and paused journeys and sending campaigns wait for."""
    found = Interest()
    live = (JourneyStatus.active, JourneyStatus.paused)
    for journey in session.exec(select(Journey).where(col(Journey.status).in_(live))):
        assert journey.id is not None
        found.journeys[journey.id] = journey
        definition = definition_of(journey)
        trigger = definition.trigger
        if journey.status == JourneyStatus.active:
            if isinstance(trigger, d.EventTrigger):
                found.entering[trigger.event].append(journey)
            elif isinstance(trigger, d.SegmentTrigger):
                found.segments[(trigger.type, trigger.segment_id)].append(journey)
        found.waiting |= {s.event for s in definition.steps.values() if isinstance(s, d.WaitForEventStep)}
        if definition.goal is not None:
            found.goals[definition.goal.event].append(journey)
    sending = (CampaignStatus.sending, CampaignStatus.completed)
    campaigns = select(Campaign).where(
        col(Campaign.status).in_(sending), col(Campaign.goal_event).is_not(None)
    )
    for campaign in session.exec(campaigns):
        assert campaign.id is not None and campaign.goal_event is not None
        found.campaigns[campaign.goal_event].append((campaign.id, campaign.goal_days))
    return found


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _runtime(source: RuntimeSource) -> Runtime:
    return source if isinstance(source, Runtime) else Runtime.load(source)


def _database(source: RuntimeSource) -> str:
    if isinstance(source, Runtime):
        return source.tenant.database
    with control_session() as control:
        return get_tenant(control, source).database


# --- processed events -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Row:
    id: int
    event: str
    profile_id: str
    properties: dict[str, Any]
    timestamp: datetime


def follow_events(source: RuntimeSource) -> int:
    """Handle the processed track events past the cursor; how many relevant ones were read."""
    runtime: Runtime | None = source if isinstance(source, Runtime) else None
    database = _database(source)
    total = 0
    position: int | None = None  # how far this call read (the cursor may stay behind it)
    while True:
        with Session(tenant_engine(database), expire_on_commit=False) as session:
            write_lock(session)
            transaction_lock(session, "journeys.follow.events")
            connection = session.connection()
            end_id = int(connection.execute(sa.select(sa.func.max(EVENT.c.id))).scalar() or 0)
            pending = connection.execute(
                sa.select(sa.func.min(EVENT.c.id)).where(EVENT.c.status == EventStatus.pending)
            ).scalar()
            cap = int(pending) - 1 if pending is not None else None
            cursor = cursor_named(session, EVENTS, min(end_id, cap) if cap is not None else end_id)
            wanted = interest(session)
            names = wanted.event_names
            rows: list[_Row] = []
            read = 0
            if names:
                query = (
                    sa.select(EVENT.c.id, EVENT.c.event, EVENT.c.profile_id, EVENT.c.properties, EVENT.c.timestamp)
                    .where(EVENT.c.id > max(cursor.last_id, position or 0), EVENT.c.type == "track",
                           EVENT.c.status == EventStatus.processed, EVENT.c.event.in_(sorted(names)))
                    .order_by(EVENT.c.id)
                    .limit(CHUNK)
                )  # fmt: skip
                found = list(connection.execute(query))
                read = len(found)
                rows = [
                    _Row(r.id, r.event, r.profile_id, r.properties or {}, _aware(r.timestamp))
                    for r in found
                    if r.profile_id
                ]
            if rows:
                runtime = runtime or _runtime(source)
                run = Run(session, runtime)
                _handle_events(run, wanted, rows)
                run.flush()
            full = read == CHUNK
            position = found[-1].id if full else end_id
            advance(cursor, utcnow(), end_id, position, cap)
            session.add(cursor)
            session.commit()
            total += len(rows)
        if not full:
            return total


def _handle_events(run: Run, wanted: Interest, rows: list[_Row]) -> None:
    session = run.session
    campaign_events = [(r.event, r.profile_id, r.timestamp) for r in rows if r.event in wanted.campaigns]
    if campaign_events:
        record_conversions(session, dict(wanted.campaigns), campaign_events)
    for name, journeys in wanted.entering.items():
        matching = [r for r in rows if r.event == name]
        for journey in journeys:
            since = _aware(journey.activated_at or run.now) - SKEW
            candidates = [
                Candidate(r.profile_id, dict(r.properties), f"event:{r.id}", r.id)
                for r in matching
                if r.id > journey.event_position and r.timestamp >= since
            ]
            if candidates:
                enter_many(run, journey, candidates)
    for _ in range(3):  # an event may resume an entry into a new wait that a later event ends
        if not _resolve_waits(run, wanted, [r for r in rows if r.event in wanted.waiting]):
            break
    _reach_goals(run, wanted, rows)


def _lock(session: Session, query: Any) -> Any:
    return query.with_for_update() if session.get_bind().dialect.name == "postgresql" else query


def _resolve_waits(run: Run, wanted: Interest, rows: list[_Row]) -> int:
    """Entries waiting for one of these events get it (a paused journey's, when it is active again)."""
    if not rows:
        return 0
    session = run.session
    by_key: defaultdict[tuple[str, str], list[_Row]] = defaultdict(list)
    for row in rows:
        by_key[(row.profile_id, row.event)].append(row)
    query = (
        sa.select(ENTRY)
        .where(
            ENTRY.c.state == EntryState.waiting,
            ENTRY.c.waiting_event.in_(sorted({r.event for r in rows})),
            ENTRY.c.profile_id.in_(sorted({r.profile_id for r in rows})),
        )
        .order_by(ENTRY.c.id)
    )
    going: defaultdict[int, list[JourneyEntry]] = defaultdict(list)
    for entry in run.load(_lock(session, query)):
        assert entry.id is not None and entry.waiting_event is not None
        journey = wanted.journeys.get(entry.journey_id)
        due = _aware(entry.due_at) if entry.due_at else None
        came = next(
            (r for r in by_key.get((entry.profile_id, entry.waiting_event), [])
             if r.id > entry.wait_event_id and _aware(entry.step_at) - SKEW <= r.timestamp
             and (due is None or r.timestamp <= due)),
            None,
        )  # fmt: skip
        if came is None or journey is None:
            continue
        entry.waiting_event = None  # the event came: resume takes the on_event way
        if journey.status == JourneyStatus.active:
            run.positions[entry.id] = came.id
            going[entry.journey_id].append(entry)
        else:  # paused: it goes on when the journey is active again, through the timers
            run.touch(entry)
            entry.due_at, entry.version = run.now, entry.version + 1
    for journey_id, group in going.items():
        resume(run, wanted.journeys[journey_id], group)
    return sum(len(group) for group in going.values())


def _reach_goals(run: Run, wanted: Interest, rows: list[_Row]) -> None:
    """Entries whose goal event came within its days after they entered convert."""
    session = run.session
    countable = (EntryState.active, EntryState.waiting, EntryState.holdout, EntryState.completed)
    for name, journeys in wanted.goals.items():
        by_profile: defaultdict[str, list[_Row]] = defaultdict(list)
        for row in rows:
            if row.event == name:
                by_profile[row.profile_id].append(row)
        if not by_profile:
            continue
        for journey in journeys:
            goal = definition_of(journey).goal
            assert goal is not None and journey.id is not None
            query = (
                sa.select(ENTRY)
                .where(
                    ENTRY.c.journey_id == journey.id,
                    ENTRY.c.profile_id.in_(sorted(by_profile)),
                    ENTRY.c.state.in_(countable),
                    ENTRY.c.converted_at.is_(None),
                )
                .order_by(ENTRY.c.id)
            )
            reached, at = [], {}
            for entry in run.load(_lock(session, query)):
                assert entry.id is not None
                until = _aware(entry.entered_at) + timedelta(days=goal.within_days)
                came = next(
                    (
                        r
                        for r in by_profile[entry.profile_id]
                        if r.id > entry.first_event_id
                        and _aware(entry.entered_at) - SKEW <= r.timestamp <= until
                    ),
                    None,
                )
                if came is not None:
                    reached.append(entry)
                    at[entry.id] = came.timestamp
            if reached:
                convert(run, reached, at)


# --- internal events (segments, loyalty) -----------------------------------------------------------------------
def follow_internal_events(source: RuntimeSource) -> int:
    """Enter profiles that entered or exited the trigger segment of an active journey, or had an
    internal event an event trigger names (loyalty's); how many internal events were read."""
    runtime: Runtime | None = source if isinstance(source, Runtime) else None
    database = _database(source)
    total = 0
    position: int | None = None
    while True:
        with Session(tenant_engine(database), expire_on_commit=False) as session:
            write_lock(session)
            transaction_lock(session, "journeys.follow.internal")
            connection = session.connection()
            end_id = int(connection.execute(sa.select(sa.func.max(INTERNAL.c.id))).scalar() or 0)
            cursor = cursor_named(session, INTERNALS, end_id)
            wanted = interest(session)
            rows: list[Any] = []
            # Event triggers may name Tessera's own events too ("Loyalty Tier Changed", ...).
            names = sorted(
                set(wanted.entering) | ({SEGMENT_ENTERED, SEGMENT_EXITED} if wanted.segments else set())
            )
            if names:
                query = (
                    sa.select(INTERNAL.c.id, INTERNAL.c.name, INTERNAL.c.profile_id, INTERNAL.c.properties)
                    .where(INTERNAL.c.id > max(cursor.last_id, position or 0), INTERNAL.c.name.in_(names))
                    .order_by(INTERNAL.c.id)
                    .limit(CHUNK)
                )
                rows = list(connection.execute(query))
            candidates: defaultdict[int, list[Candidate]] = defaultdict(list)
            for row in rows:
                properties = row.properties or {}
                for journey in wanted.entering.get(row.name, []):
                    if row.id > journey.internal_position and journey.id is not None:
                        candidates[journey.id].append(
                            Candidate(row.profile_id, dict(properties), f"internal:{row.id}")
                        )
                if row.name not in (SEGMENT_ENTERED, SEGMENT_EXITED):
                    continue
                if properties.get("initial"):  # a new segment's first members did not just enter it
                    continue
                kind = "segment_entered" if row.name == SEGMENT_ENTERED else "segment_exited"
                segment_id = properties.get("segment_id")
                for journey in (
                    wanted.segments.get((kind, segment_id), []) if isinstance(segment_id, int) else []
                ):
                    if row.id > journey.internal_position and journey.id is not None:
                        data = {
                            "segment_id": properties.get("segment_id"),
                            "segment": properties.get("segment"),
                        }
                        candidates[journey.id].append(Candidate(row.profile_id, data, f"internal:{row.id}"))
            if candidates:
                runtime = runtime or _runtime(source)
                run = Run(session, runtime)
                for journey_id, found in candidates.items():
                    enter_many(run, wanted.journeys[journey_id], found)
                run.flush()
            full = len(rows) == CHUNK
            position = rows[-1].id if full else end_id
            advance(cursor, utcnow(), end_id, position, None)
            session.add(cursor)
            session.commit()
            total += len(rows)
        if not full:
            return total


def after_processing(tenant: Tenant, enabled: Collection[str]) -> None:
    """Follow both streams after a processing batch (logged, never raised: the tick catches up)."""
    try:
        runtime = Runtime.of(tenant, enabled)
        follow_events(runtime)
        follow_internal_events(runtime)
    except Exception:
        log.exception("journeys could not follow the events of %s; the next tick catches up", tenant.slug)


# --- dates ----------------------------------------------------------------------------------------------
def date_candidates(session: Session, trigger: d.DateTrigger, day: datetime) -> list[Candidate]:
    """The live profiles whose ``trigger.trait`` is ``day`` (its month and day, when annual)."""
    target = day.date()
    value = PROFILE.c.traits[trigger.trait].as_string()
    patterns = [f"____-{target:%m-%d}%"] if trigger.annual else [f"{target.isoformat()}%"]
    leap = target.year % 4 == 0 and (target.year % 100 != 0 or target.year % 400 == 0)
    if trigger.annual and target.month == 2 and target.day == 28 and not leap:
        patterns.append("____-02-29%")  # born on 29 February: the 28th in other years
    query = sa.select(PROFILE.c.id, value).where(
        PROFILE.c.merged_into.is_(None), sa.or_(*(value.like(p) for p in patterns))
    )
    key = f"date:{target.isoformat()}"
    return [
        Candidate(pid, {"date": target.isoformat(), trigger.trait: found}, key)
        for pid, found in session.connection().execute(query)
    ]


def enter_by_dates(source: RuntimeSource, now: datetime | None = None) -> int:
    """Enter the profiles of every active date-triggered journey whose day it is; how many."""
    runtime = _runtime(source)
    tenant = runtime.tenant
    local = (now or utcnow()).astimezone(ZoneInfo(tenant.timezone))
    entered = 0
    with Session(tenant_engine(tenant.database), expire_on_commit=False) as session:
        journeys = list(session.exec(select(Journey).where(Journey.status == JourneyStatus.active)))
    for journey in journeys:
        trigger = definition_of(journey).trigger
        if not isinstance(trigger, d.DateTrigger) or local.time() < d.clock_time(trigger.at):
            continue
        day = local + timedelta(days=trigger.days_before)
        with Session(tenant_engine(tenant.database), expire_on_commit=False) as session:
            candidates = date_candidates(session, trigger, day)
        # In chunks, each its own transaction; an entry is made once per profile and date
        # (``trigger_key``), so runs that overlap or repeat enter nobody twice.
        for start in range(0, len(candidates), 1_000):
            with Session(tenant_engine(tenant.database), expire_on_commit=False) as session:
                write_lock(session)
                current = session.get(Journey, journey.id)
                if current is None or current.status != JourneyStatus.active:
                    break
                run = Run(session, runtime, now)
                entered += len(enter_many(run, current, candidates[start : start + 1_000]))
                run.flush()
                session.commit()
    return entered
