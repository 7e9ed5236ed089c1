"""Journeys as marketers and the API use them: save (checked), activate, pause, archive, enter by
API, and read how many went where.

A journey is edited as a draft, or while paused (its entries stay where they are; those standing
at a step the change removed leave the journey). Activating checks the definition against the
tenant again (a channel may have been disabled since). Pausing stops new entries and holds
timers (waits that end meanwhile go on when the journey is active again); archiving ends every
entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from core.db.base import utcnow
from core.db.locks import transaction_lock
from core.internal_events.models import InternalEvent
from core.journeys import definition as d
from core.journeys.definition import DefinitionInvalid
from core.journeys.engine import Candidate, enter_many, exit_all
from core.journeys.jobs import DATES
from core.journeys.models import (
    OPEN_STATES,
    EntryState,
    Journey,
    JourneyEntry,
    JourneyStatus,
    JourneyVisit,
)
from core.journeys.run import Run, Runtime, definition_of, latest_event_id, schedule_timers
from core.journeys.timers import write_lock
from core.journeys.triggers import EVENTS, INTERNALS
from core.profiles.service import get_profile
from core.queue.outbox import add_job
from core.segments.service import TenantScope
from core.streams.cursor import cursor_named
from core.tenancy.models import Tenant

__all__ = [
    "DefinitionInvalid", "JourneyIn", "JourneyNotFound", "JourneyRefused", "ProfilePath", "StepCount",
    "activate", "archive", "create_journey", "empty_definition", "enter", "get_journey", "journey_summary",
    "list_journeys", "paths_of", "pause", "step_counts", "update_journey",
]  # fmt: skip
NAME_LENGTH = 200
EDITABLE = (JourneyStatus.draft, JourneyStatus.paused)
ENTRY = JourneyEntry.__table__  # type: ignore[attr-defined]
VISIT = JourneyVisit.__table__  # type: ignore[attr-defined]
INTERNAL = InternalEvent.__table__  # type: ignore[attr-defined]


class JourneyIn(BaseModel):
    """What a marketer or a script gives to create or change a journey."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=NAME_LENGTH)
    description: str = Field(default="", max_length=2000)
    definition: dict[str, Any] = Field(
        description="Trigger, start, steps, goal, re-entry (docs/journeys.md)."
    )


class JourneyNotFound(LookupError):
    """No journey has this id."""


class JourneyRefused(ValueError):
    """The change or action is not possible now; ``str()`` says why and what to do."""


@dataclass(frozen=True)
class StepCount:
    """How many passes went through a step (``entered``: visits) and stand there now."""

    entered: int
    here_now: int


@dataclass(frozen=True)
class ProfilePath:
    """One pass of a profile through a journey, with the steps it went through in order."""

    journey: Journey
    entry: JourneyEntry
    visits: list[JourneyVisit]


def empty_definition() -> dict[str, Any]:
    """The definition a new journey starts from: entered by API, straight to an exit."""
    return {
        "trigger": {"type": "api"},
        "start": "exit",
        "steps": {"exit": {"type": "exit", "label": "Exit"}},
        "goal": None,
        "reentry": {"mode": "never", "cooldown_hours": 0},
    }


def _name(session: Session, name: str, journey_id: int | None) -> str:
    name = name.strip()
    if not name:
        raise DefinitionInvalid([("name", "give the journey a name")])
    taken = session.exec(select(Journey.id).where(Journey.name == name)).first()
    if taken is not None and taken != journey_id:
        raise JourneyRefused(f"A journey is already named {name!r}.")
    return name


def create_journey(session: Session, scope: TenantScope, data: JourneyIn, actor: str) -> Journey:
    """A new draft journey; :class:`DefinitionInvalid` or :class:`JourneyRefused` if it cannot be."""
    name = _name(session, data.name, None)
    d.check_definition(session, scope, data.definition)
    journey = Journey(name=name, description=data.description.strip(), definition=data.definition,
                      created_by=actor, updated_by=actor)  # fmt: skip
    session.add(journey)
    session.flush()
    return journey


def update_journey(
    session: Session, scope: TenantScope, journey_id: int, data: JourneyIn, actor: str
) -> Journey:
    """Change a draft or paused journey (a paused one's entries at removed steps exit)."""
    journey = get_journey(session, journey_id)
    if journey.status not in EDITABLE:
        what = (
            "pause it to change it" if journey.status == JourneyStatus.active else "it can no longer change"
        )
        raise JourneyRefused(f"Journey {journey.name!r} is {journey.status}: {what}.")
    name = _name(session, data.name, journey_id)
    definition = d.check_definition(session, scope, data.definition)
    if data.definition != journey.definition:
        removed = sorted(set(definition_of(journey).steps) - set(definition.steps))
        if removed:
            exit_all(session, journey_id, utcnow(), "exit:step removed", removed)
        journey.definition, journey.version = data.definition, journey.version + 1
    journey.name, journey.description = name, data.description.strip()
    journey.updated_at, journey.updated_by = utcnow(), actor
    session.add(journey)
    session.flush()
    return journey


def get_journey(session: Session, journey_id: int) -> Journey:
    """The journey, or :class:`JourneyNotFound`."""
    journey = session.get(Journey, journey_id)
    if journey is None:
        raise JourneyNotFound(f"No journey {journey_id}.")
    return journey


def list_journeys(session: Session) -> list[Journey]:
    """Every journey (archived ones too), by name."""
    return list(session.exec(select(Journey).order_by(col(Journey.name))))


def activate(session: Session, tenant: Tenant, scope: TenantScope, journey: Journey, actor: str) -> Journey:
    """Start (or resume) a journey: from now on its trigger enters profiles and its timers run.

    Waits that ended while it was paused go on at once. :class:`DefinitionInvalid` if the
    definition no longer holds for the tenant.
    """
    if journey.status not in EDITABLE:
        raise JourneyRefused(f"Journey {journey.name!r} is {journey.status}: it cannot be activated.")
    d.check_definition(session, scope, journey.definition)
    now = utcnow()
    journey.status, journey.activated_at = JourneyStatus.active, now
    # Triggers react to what happens from now on, not to what was stored before.
    journey.event_position = latest_event_id(session)
    journey.internal_position = int(
        session.connection().execute(sa.select(sa.func.max(INTERNAL.c.id))).scalar() or 0
    )
    journey.updated_at, journey.updated_by = now, actor
    session.add(journey)
    # The stream followers start from these positions if they have not started yet: a follower made
    # later (after the first events were processed) would start past them and never see them.
    cursor_named(session, EVENTS, journey.event_position)
    cursor_named(session, INTERNALS, journey.internal_position)
    schedule_timers(session, tenant.slug, [now])
    if isinstance(definition_of(journey).trigger, d.DateTrigger):
        add_job(session, tenant.slug, DATES, {})  # today's dates need not wait for the hourly run
    return journey


def pause(session: Session, journey: Journey, actor: str) -> Journey:
    """Hold an active journey: nobody enters and no timer runs until it is activated again."""
    if journey.status != JourneyStatus.active:
        raise JourneyRefused(f"Journey {journey.name!r} is {journey.status}: only an active journey pauses.")
    journey.status, journey.updated_at, journey.updated_by = JourneyStatus.paused, utcnow(), actor
    session.add(journey)
    return journey


def archive(session: Session, journey: Journey, actor: str) -> Journey:
    """Retire a journey: every entry still in it exits; it keeps its history and report."""
    if journey.status == JourneyStatus.archived:
        raise JourneyRefused(f"Journey {journey.name!r} is archived already.")
    assert journey.id is not None
    now = utcnow()
    exit_all(session, journey.id, now, "exit:archived")
    journey.status, journey.updated_at, journey.updated_by = JourneyStatus.archived, now, actor
    session.add(journey)
    return journey


def enter(
    session: Session,
    tenant: Tenant,
    scope: TenantScope,
    journey: Journey,
    profile_id: str,
    data: dict[str, Any] | None = None,
) -> JourneyEntry | None:
    """Enter a profile into an active, API-triggered journey and advance it; None when the
    re-entry policy refuses. :class:`~core.profiles.service.ProfileNotFound` for an unknown
    profile (a merged one enters as the profile it was merged into). The caller commits."""
    if journey.status != JourneyStatus.active:
        raise JourneyRefused(
            f"Journey {journey.name!r} is {journey.status}: only an active journey takes entries."
        )
    if not isinstance(definition_of(journey).trigger, d.ApiTrigger):
        raise JourneyRefused(f"Journey {journey.name!r} is not entered through the API.")
    profile = get_profile(session, profile_id)
    write_lock(session)
    transaction_lock(session, f"journeys.enter.{journey.id}.{profile.id}")  # one decision at a time
    run = Run(session, Runtime(tenant, scope))
    entries = enter_many(run, journey, [Candidate(profile.id, dict(data or {}))])
    run.flush()
    return entries[0] if entries else None


def step_counts(session: Session, journey_id: int) -> dict[str, StepCount]:
    """Per step of the journey: passes that went through it, and passes standing there now."""
    journey = get_journey(session, journey_id)
    connection = session.connection()
    visited: dict[str, int] = dict(
        connection.execute(
            sa.select(VISIT.c.step, sa.func.count())
            .where(VISIT.c.journey_id == journey_id)
            .group_by(VISIT.c.step)
        ).all()
    )
    here: dict[str | None, int] = dict(
        connection.execute(
            sa.select(ENTRY.c.step, sa.func.count())
            .where(ENTRY.c.journey_id == journey_id, ENTRY.c.state.in_(list(OPEN_STATES)))
            .group_by(ENTRY.c.step)
        ).all()
    )
    return {
        key: StepCount(int(visited.get(key, 0)), int(here.get(key, 0)))
        for key in definition_of(journey).steps
    }


def journey_summary(session: Session, journey_id: int) -> dict[str, int]:
    """How many passes: ``entered`` in all; ``active`` (in the journey now, waiting or not),
    ``completed``, ``exited``, ``holdout``; ``converted`` (hold-out ones included)."""
    rows = session.connection().execute(
        sa.select(ENTRY.c.state, sa.func.count(), sa.func.count(ENTRY.c.converted_at))
        .where(ENTRY.c.journey_id == journey_id)
        .group_by(ENTRY.c.state)
    )
    by_state: dict[str, int] = {}
    converted = 0
    for state, number, with_goal in rows:
        by_state[str(state)] = int(number)
        converted += int(with_goal)
    return {
        "entered": sum(by_state.values()),
        "active": by_state.get(EntryState.active, 0) + by_state.get(EntryState.waiting, 0),
        "completed": by_state.get(EntryState.completed, 0),
        "exited": by_state.get(EntryState.exited, 0),
        "converted": converted,
        "holdout": by_state.get(EntryState.holdout, 0),
    }


def paths_of(session: Session, profile_id: str) -> list[ProfilePath]:
    """The profile's passes through journeys, newest first, each with its visits in order."""
    entries = list(
        session.exec(
            select(JourneyEntry)
            .where(JourneyEntry.profile_id == profile_id)
            .order_by(col(JourneyEntry.entered_at).desc(), col(JourneyEntry.id).desc())
        )
    )
    if not entries:
        return []
    journeys = {
        j.id: j
        for j in session.exec(select(Journey).where(col(Journey.id).in_({e.journey_id for e in entries})))
    }
    visits: dict[int, list[JourneyVisit]] = {}
    query = select(JourneyVisit).where(col(JourneyVisit.entry_id).in_([e.id for e in entries]))
    for visit in session.exec(query.order_by(col(JourneyVisit.id))):
        visits.setdefault(visit.entry_id, []).append(visit)
    return [
        ProfilePath(journeys[e.journey_id], e, visits.get(e.id or 0, []))
        for e in entries
        if e.journey_id in journeys
    ]
