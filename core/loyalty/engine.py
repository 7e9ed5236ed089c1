"""Loyalty in real time: following processed events and applying every program to them.

The processed track events are split into partitions by profile (two on PostgreSQL, so two
workers apply rules side by side without waiting on each other's members; one on SQLite). Each
partition has a coalescing job that reads its events past its own cursor (:mod:`core.streams.
cursor`), chunk by chunk, and for each active program: locks the members, earns by the rules,
reverses refunded orders, counts challenges and referrals, records the ledger entries and their
internal events, and moves the cursor, all in one transaction. The stream shows its most recent
rows again (a row may still appear below them): each program records the events it was applied
to, so an event is decided once; every ledger entry also has an idempotency key. Processing
queues the jobs after each batch; a one-minute tick queues them too, and an hourly job records expiries and closes ended tier periods.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session

from core.db.base import utcnow
from core.db.bulk import insert_rows
from core.db.engines import control_session, tenant_engine
from core.db.locks import transaction_lock
from core.ingest.models import Event, EventStatus
from core.journeys.run import Runtime
from core.journeys.triggers import follow_internal_events
from core.loyalty import challenges, events, referrals
from core.loyalty.earning import APPLIED, earlier_refunds, earn, reversals
from core.loyalty.expiry import expire_due, roll_periods
from core.loyalty.ledger import Posted, lock_members, post
from core.loyalty.models import EntryKind, LoyaltyProgram, RuleStatus
from core.loyalty.programs import CompiledRule, compile_rule, list_programs, list_rules
from core.loyalty.state import EventRow
from core.passes.marking import mark_changed
from core.plugins import get_host
from core.queue.outbox import ensure_job, release_coalesced
from core.segments.jobs import after_profiles_changed
from core.segments.service import conditions_for
from core.streams.cursor import advance, cursor_named
from core.tenancy.models import Tenant
from core.tenancy.plugin_settings import enabled_plugins
from core.tenancy.tenants import get_tenant

log = logging.getLogger(__name__)
EVENT = Event.__table__  # type: ignore[attr-defined]
APPLY = "core.loyalty.apply"
TICK = "core.loyalty.tick"
DAILY = "core.loyalty.expire"
TICK_EVERY = timedelta(minutes=1)
DAILY_EVERY = timedelta(hours=1)
PARTS = {"postgresql": 2, "sqlite": 1}
CHUNK = 5_000


@dataclass
class ProgramSetup:
    """An active program, its live rules, and the event names it follows."""

    program: LoyaltyProgram
    rules: list[CompiledRule]
    names: set[str]


@dataclass
class Setup:
    """What applying loyalty to a tenant's events takes."""

    tenant: Tenant
    enabled: set[str]
    programs: list[ProgramSetup] = field(default_factory=list)

    @property
    def names(self) -> set[str]:
        """Every event name some program follows."""
        return {name for p in self.programs for name in p.names}


def load_setup(session: Session, tenant: Tenant, enabled: Collection[str]) -> Setup:
    """The tenant's active programs with their active rules, compiled (invalid rules are skipped)."""
    setup = Setup(tenant, set(enabled))
    conditions = conditions_for(set(enabled))
    for program in list_programs(session):
        assert program.id is not None
        compiled: list[CompiledRule] = []
        for rule in list_rules(session, program.id, RuleStatus.active):
            try:
                compiled.append(compile_rule(session, rule, conditions))
            except ValueError:  # e.g. a segment it names was archived: the rule waits for a fix
                log.warning("loyalty rule %s of %s cannot be applied", rule.id, tenant.slug, exc_info=True)
        names = {c.rule.event for c in compiled} | set(program.refund_events)
        names |= challenges.followed_events(session, program.id) | referrals.followed_events(program)
        setup.programs.append(ProgramSetup(program, compiled, names))
    return setup


def apply_rows(
    session: Session, setup: Setup, rows: Sequence[EventRow], now: datetime | None = None
) -> set[str]:
    """Apply every program to ``rows`` in the session's transaction; the profiles that changed."""
    now = now or utcnow()
    zone = ZoneInfo(setup.tenant.timezone)
    changed: set[str] = set()
    for item in setup.programs:
        program = item.program
        mine = _not_applied(session, program, [row for row in rows if row.event in item.names])
        if not mine:
            continue
        members = lock_members(session, program, {row.profile_id for row in mine})
        # Entries of events not applied yet cannot be recorded yet: they are written with the mark.
        earned = earn(session, program, item.rules, mine, members, zone)
        posted = post(session, program, earned, members=members, fresh=True)
        taken_back = reversals(session, program, mine)
        posted.extend(post(session, program, taken_back, clamp=True, members=members, fresh=True))
        # A refund applied before its purchase (events out of order) takes back what it earns now.
        new = [entry for entry in posted.entries if entry["kind"] == EntryKind.earn]
        late = earlier_refunds(session, program, new, {row.id for row in mine})
        if late:
            late_back = reversals(session, program, late, only={entry["id"] for entry in new})
            posted.extend(post(session, program, late_back, clamp=True, members=members, fresh=True))
        posted.extend(challenges.on_events(session, program, mine, members, now, zone=zone))
        posted.extend(referrals.on_events(session, program, mine, members, now))
        events.record(session, program, posted)
        insert_rows(
            session.connection(), APPLIED, [{"program_id": program.id, "event_id": r.id} for r in mine]
        )
        changed |= posted.profiles
    return changed


def _not_applied(session: Session, program: LoyaltyProgram, rows: list[EventRow]) -> list[EventRow]:
    """The rows the program has not been applied to yet (the stream shows recent rows again)."""
    if not rows:
        return rows
    ids = [row.id for row in rows]
    query = sa.select(APPLIED.c.event_id).where(
        APPLIED.c.program_id == program.id, APPLIED.c.event_id.between(min(ids), max(ids))
    )  # a range of the primary key: cheaper than a list of every id
    done = set(session.connection().execute(query).scalars())
    fresh: dict[int, EventRow] = {}
    for row in rows:
        if row.id not in done:
            fresh.setdefault(row.id, row)
    return list(fresh.values())


def cursor_name(part: int, parts: int) -> str:
    """The stream cursor of one partition."""
    return f"loyalty:{part}/{parts}"


def start_cursors(session: Session) -> None:
    """Place missing partition cursors at the end of the event stream (a first program starts now)."""
    end_id = int(session.connection().execute(sa.select(sa.func.max(EVENT.c.id))).scalar() or 0)
    parts = parts_of(session)
    for part in range(parts):
        cursor_named(session, cursor_name(part, parts), end_id)


def parts_of(session: Session) -> int:
    """How many partitions the tenant's events are applied in."""
    return PARTS.get(session.get_bind().dialect.name, 1)


def _in_part(part: int, parts: int) -> Any:
    if parts == 1:
        return sa.true()
    return (sa.func.hashtext(EVENT.c.profile_id).op("&")(0x7FFFFFFF) % parts) == part


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _rows_query(after: int, names: Collection[str], part: int, parts: int) -> Any:
    return (
        sa.select(EVENT.c.id, EVENT.c.message_id, EVENT.c.event, EVENT.c.profile_id, EVENT.c.properties,
                  EVENT.c.timestamp)
        .where(EVENT.c.id > after, EVENT.c.type == "track", EVENT.c.status == EventStatus.processed,
               EVENT.c.event.in_(sorted(names)), EVENT.c.profile_id.is_not(None), _in_part(part, parts))
        .order_by(EVENT.c.id)
    )  # fmt: skip


def _load(tenant_slug: str) -> tuple[Tenant, set[str]]:
    host = get_host()
    with control_session() as control:
        tenant = get_tenant(control, tenant_slug)
        return tenant, enabled_plugins(control, tenant, host)


def apply_events(tenant_slug: str, payload: dict[str, Any]) -> None:
    """Job: apply loyalty to the processed events of one partition until caught up."""
    tenant, enabled = _load(tenant_slug)
    part = int(payload.get("part", 0))
    engine = tenant_engine(tenant.database)
    position: int | None = None  # how far this run read (the cursor may stay behind it)
    while True:
        with Session(engine, expire_on_commit=False) as session:
            parts = parts_of(session)
            transaction_lock(session, f"loyalty.apply.{part}")  # one runner per partition
            setup = load_setup(session, tenant, enabled)
            connection = session.connection()
            end_id = int(connection.execute(sa.select(sa.func.max(EVENT.c.id))).scalar() or 0)
            pending = connection.execute(
                sa.select(sa.func.min(EVENT.c.id)).where(EVENT.c.status == EventStatus.pending)
            ).scalar()
            cap = int(pending) - 1 if pending is not None else None
            # A cursor missing here reads from the start (rules only earn on events of their time);
            # a new program places its cursors at the stream's end (see start_cursors).
            cursor = cursor_named(session, cursor_name(part, parts), 0)
            after = max(cursor.last_id, position or 0)
            found = []
            if setup.names:
                found = list(connection.execute(_rows_query(after, setup.names, part, parts).limit(CHUNK)))
            rows = [
                EventRow(r.id, r.message_id, r.event, r.profile_id, r.properties or {}, _aware(r.timestamp))
                for r in found
            ]
            changed = apply_rows(session, setup, rows) if rows else set()
            full = len(found) == CHUNK
            position = found[-1].id if full else (min(end_id, cap) if cap is not None else end_id)
            advance(cursor, utcnow(), end_id, position, cap)
            session.add(cursor)
            mark_changed(session, tenant.slug, changed)  # passes showing points and tiers follow
            more = full or release_coalesced(
                session, f"{APPLY}:{part}", _has_more(session, setup, position, part)
            )
            session.commit()
        _after_commit(tenant, enabled, changed)
        if not more:
            return


def _has_more(session: Session, setup: Setup, after: int, part: int) -> Callable[[], bool]:
    """Whether events for this partition arrived after ``after`` (asked when the job would end)."""

    def more() -> bool:
        if not setup.names:
            return False
        query = _rows_query(after, setup.names, part, parts_of(session)).limit(1)
        return session.connection().execute(query).first() is not None

    return more


def _after_commit(tenant: Tenant, enabled: set[str], changed: set[str]) -> None:
    """Real-time segments, journeys and listening plugins learn of the changes (never raises)."""
    if not changed:
        return
    try:
        after_profiles_changed(tenant, changed, enabled)
        follow_internal_events(Runtime.of(tenant, enabled))  # journeys triggered by loyalty events
    except Exception:
        log.exception("segments or journeys could not follow loyalty changes of %s", tenant.slug)
    events.tell_plugins(tenant.slug, changed, passes_marked=True)  # marked with the chunk


def has_programs(session: Session) -> bool:
    """Whether the tenant runs an active program."""
    return bool(list_programs(session))


def queue_apply(session: Session, tenant_slug: str) -> None:
    """See that every partition's apply job runs after this transaction (if a program is active)."""
    if not has_programs(session):
        return
    for part in range(parts_of(session)):
        ensure_job(session, tenant_slug, APPLY, {"part": part}, name=f"{APPLY}:{part}")


def after_processing(tenant: Tenant) -> None:
    """Queue the apply jobs after a processing batch (logged, never raised: the tick catches up)."""
    try:
        with Session(tenant_engine(tenant.database)) as session:
            queue_apply(session, tenant.slug)
            session.commit()
    except Exception:
        log.exception("loyalty could not be queued for %s; the tick catches up", tenant.slug)


def tick(tenant_slug: str, payload: dict[str, Any]) -> None:
    """Job, every minute: queue the apply jobs (events a crash or a race left behind get applied)."""
    tenant, _ = _load(tenant_slug)
    with Session(tenant_engine(tenant.database)) as session:
        queue_apply(session, tenant.slug)
        session.commit()


def expire_and_roll(tenant_slug: str, payload: dict[str, Any]) -> None:
    """Job, hourly: record expired points and close ended tier periods, for every active program."""
    tenant, enabled = _load(tenant_slug)
    changed: set[str] = set()
    with Session(tenant_engine(tenant.database), expire_on_commit=False) as session:
        for program in list_programs(session):
            posted = Posted()
            posted.extend(expire_due(session, program))
            posted.extend(roll_periods(session, program))
            events.record(session, program, posted)
            changed |= posted.profiles
        session.commit()
    _after_commit(tenant, enabled, changed)
