"""What advancing entries works with: the tenant (:class:`Runtime`, read once per job) and one
transaction's buffers (:class:`Run`: visits to write, timers to schedule, profiles changed)."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlmodel import Session

from core.db.base import utcnow
from core.db.bulk import insert_rows, update_rows
from core.db.engines import control_session, json_dumps
from core.delivery.policy_store import get_policy
from core.ingest.models import Event
from core.journeys.definition import Definition, parse_definition
from core.journeys.models import EntryState, Journey, JourneyEntry, JourneyVisit
from core.messages.policy import Policy
from core.plugins import get_host
from core.queue.outbox import add_job
from core.segments.clock import Clock
from core.segments.service import TenantScope, conditions_for, tenant_scope
from core.tenancy.models import Tenant
from core.tenancy.tenants import get_tenant

ADVANCE_TIMERS = "core.journeys.timers"
# Timers are grouped into jobs due at the end of each such slice of time: one job for the
# thousands of entries whose waits end together, at most a few seconds late.
TIMER_RESOLUTION = 5
EVENT = Event.__table__  # type: ignore[attr-defined]
VISIT = JourneyVisit.__table__  # type: ignore[attr-defined]
ENTRY = JourneyEntry.__table__  # type: ignore[attr-defined]
# What advancing may change on an entry (written back in one statement per run).
CHANGING = ("step", "state", "due_at", "waiting_event", "visits", "step_at", "ended_at", "converted_at",
            "open_key", "first_event_id", "wait_event_id", "version")  # fmt: skip
_AFTER_COMMIT = "journeys_changed_profiles"
_definitions: dict[str, Definition] = {}


@dataclass(frozen=True)
class Runtime:
    """The tenant a job works for: its row (slug, database, time zone) and its enabled plugins."""

    tenant: Tenant
    scope: TenantScope

    @classmethod
    def load(cls, tenant_slug: str) -> Runtime:
        """The runtime of a tenant, read from the control database."""
        with control_session() as control:
            tenant = get_tenant(control, tenant_slug)
            return cls(tenant, tenant_scope(control, tenant))

    @classmethod
    def of(cls, tenant: Tenant, enabled: Collection[str]) -> Runtime:
        """The runtime of a tenant whose enabled plugins the caller knows already."""
        plugins = frozenset(enabled)
        scope = TenantScope(
            Clock.at(tenant.timezone), conditions_for(plugins), get_host().channels_for(plugins), plugins
        )
        return cls(tenant, scope)


def definition_of(journey: Journey) -> Definition:
    """The journey's stored definition, typed (checked when saved; parsed once per content)."""
    key = json_dumps(journey.definition)
    found = _definitions.get(key)
    if found is None:
        if len(_definitions) > 256:
            _definitions.clear()
        found = _definitions[key] = parse_definition(journey.definition)
    return found


def latest_event_id(session: Session) -> int:
    """The id of the newest stored event (0 without any)."""
    return int(session.connection().execute(sa.select(sa.func.max(EVENT.c.id))).scalar() or 0)


def timer_slot(due_at: datetime) -> datetime:
    """The end of the timer slice ``due_at`` falls in: when the job advancing it runs."""
    seconds = due_at.timestamp()
    slot = -(-seconds // TIMER_RESOLUTION) * TIMER_RESOLUTION
    return datetime.fromtimestamp(slot, UTC)


def schedule_timers(session: Session, tenant_slug: str, moments: Iterable[datetime]) -> None:
    """Make sure a timer job runs at the end of each slice holding one of ``moments``."""
    scheduled: set[datetime] = session.info.setdefault("journey_timer_slots", set())
    for slot in sorted({timer_slot(moment) for moment in moments} - scheduled):
        add_job(session, tenant_slug, ADVANCE_TIMERS, {}, due_at=slot,
                idempotency_key=f"journey-timers:{int(slot.timestamp())}")  # fmt: skip
        scheduled.add(slot)


def choice(entry_id: int, step: str) -> float:
    """A number in [0, 1) fixed by the entry and the step: a re-run makes the same choice."""
    digest = hashlib.sha256(f"{entry_id}:{step}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class Run:
    """One transaction of advancing: the buffers written when it is flushed.

    ``positions`` gives, per entry, the id of the event being handled (an entry entered or
    resumed by an event only counts later events); other entries take the newest event id.
    """

    def __init__(self, session: Session, runtime: Runtime, now: datetime | None = None) -> None:
        self.session = session
        self.runtime = runtime
        self.now = now or utcnow()
        self.visits: list[dict[str, Any]] = []
        self.touched: dict[int, JourneyEntry] = {}
        self.moments: set[datetime] = set()
        self.changed: set[str] = set()
        self.positions: dict[int, int] = {}
        self.cache: dict[Any, Any] = {}
        self._horizon: int | None = None
        self._policy: Policy | None = None

    @property
    def tenant(self) -> Tenant:
        """The tenant."""
        return self.runtime.tenant

    @property
    def clock(self) -> Clock:
        """The tenant's clock at this run's moment."""
        return Clock.at(self.tenant.timezone, self.now)

    @property
    def policy(self) -> Policy:
        """The tenant's sending policy."""
        if self._policy is None:
            self._policy = get_policy(self.session)
        return self._policy

    def position(self, entry: JourneyEntry) -> int:
        """Events with a greater id than this are new to ``entry``."""
        assert entry.id is not None
        if entry.id in self.positions:
            return self.positions[entry.id]
        if self._horizon is None:
            self._horizon = latest_event_id(self.session)
        return self._horizon

    # --- what happens to an entry ---------------------------------------------------------------
    def touch(self, entry: JourneyEntry) -> None:
        """Remember that ``entry`` changed, to write it back."""
        assert entry.id is not None
        self.touched[entry.id] = entry

    def visit(self, entry: JourneyEntry, step: str, outcome: str) -> int:
        """Record that ``entry`` went through ``step``; the visit's number within the entry."""
        self.touch(entry)
        entry.visits += 1
        self.visits.append({"entry_id": entry.id, "journey_id": entry.journey_id, "profile_id": entry.profile_id,
                            "step": step, "at": self.now, "outcome": outcome[:120]})  # fmt: skip
        return entry.visits

    def go(self, entry: JourneyEntry, target: str | None) -> bool:
        """Move to ``target``; ``None`` completes the journey. Whether the entry goes on."""
        self.touch(entry)
        if target is None:
            self.end(entry, EntryState.completed)
            return False
        entry.step, entry.step_at = target, self.now
        return True

    def wait(self, entry: JourneyEntry, due_at: datetime, event_name: str | None = None) -> None:
        """Stop here until ``due_at`` (or the event ``event_name``, whichever comes first)."""
        self.touch(entry)
        entry.state, entry.due_at, entry.waiting_event = EntryState.waiting, due_at, event_name
        if event_name is not None:
            entry.wait_event_id = self.position(entry)
        self.moments.add(due_at)

    def end(self, entry: JourneyEntry, state: EntryState) -> None:
        """End the pass in ``state`` (completed, exited, holdout, converted)."""
        self.touch(entry)
        entry.state, entry.ended_at, entry.step = state, entry.ended_at or self.now, None
        entry.due_at, entry.waiting_event, entry.open_key = None, None, None

    # --- writing --------------------------------------------------------------------------------
    def load(self, query: sa.Select[Any]) -> list[JourneyEntry]:
        """The entries a select of every entry column finds (after writing what this run changed),
        detached from the session: the run changes them in memory and writes them back together."""
        self.write()
        return [JourneyEntry(**row._mapping) for row in self.session.connection().execute(query)]

    def write(self) -> None:
        """Write the changed entries back (one statement) and insert the buffered visits."""
        self.session.flush()
        rows = [
            {"id": key, **{name: getattr(entry, name) for name in CHANGING}}
            for key, entry in self.touched.items()
        ]
        update_rows(self.session.connection(), ENTRY, rows)
        self.touched = {}
        insert_rows(self.session.connection(), VISIT, self.visits)
        self.visits = []

    def flush(self) -> None:
        """Write the buffered visits and timer jobs; after the commit, segments re-evaluate the
        profiles whose traits changed."""
        self.write()
        if self.moments:
            schedule_timers(self.session, self.tenant.slug, self.moments)
            self.moments = set()
        if self.changed:
            pending = self.session.info.setdefault(_AFTER_COMMIT, (self.tenant, set()))[1]
            pending |= self.changed
            self.changed = set()
            if not event.contains(self.session, "after_commit", _reevaluate):
                event.listen(self.session, "after_commit", _reevaluate)


def _reevaluate(session: Session) -> None:
    from core.segments.jobs import after_profiles_changed  # segments need not know journeys

    tenant, profiles = session.info.pop(_AFTER_COMMIT, (None, set()))
    if tenant is not None and profiles:
        after_profiles_changed(tenant, profiles)


def later(now: datetime, seconds: int) -> datetime:
    """``seconds`` after ``now``."""
    return now + timedelta(seconds=seconds)
