"""Moving profiles through journeys: entering (with the re-entry policy), advancing step by step
until each entry waits or ends, resuming waits, converting on the goal, exiting in bulk.

All of it happens inside the caller's transaction on entries it holds: new ones it inserted, or
waiting ones it locked (``FOR UPDATE``; SQLite has one writer at a time). So a step never runs
twice for one visit, and what a step writes (deliveries keyed ``journey:<id>:<entry>:<step>:
<visit>``, trait events keyed the same way) is harmless to write again after a crash.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from core.db.bulk import select_in, update_rows
from core.delivery.models import Delivery, DeliveryState
from core.journeys import definition as d
from core.journeys.models import OPEN_STATES, EntryState, Journey, JourneyEntry, JourneyVisit
from core.journeys.run import Run, definition_of
from core.journeys.steps import HANDLERS
from core.profiles.models import Profile

ENTRY = JourneyEntry.__table__  # type: ignore[attr-defined]
VISIT = JourneyVisit.__table__  # type: ignore[attr-defined]
PROFILE = Profile.__table__  # type: ignore[attr-defined]
DELIVERY = Delivery.__table__  # type: ignore[attr-defined]
# A path without waits visits each step at most once (loops need a wait): this bounds one advance.
MAX_HOPS = d.MAX_STEPS + 1


@dataclass(frozen=True)
class Candidate:
    """A profile a trigger wants to enter: with the trigger's data (``event.*`` in messages), what
    started it (``trigger_key``: entered once per key) and the id of the event that did, if any."""

    profile_id: str
    data: dict[str, Any] = field(default_factory=dict)
    trigger_key: str | None = None
    event_id: int | None = None


@dataclass
class _Past:
    open: bool = False
    last_entered: datetime | None = None
    keys: set[str] = field(default_factory=set)
    count: int = 0


def _history(session: Session, journey_id: int, profile_ids: Sequence[str]) -> dict[str, _Past]:
    past: defaultdict[str, _Past] = defaultdict(_Past)
    query = sa.select(ENTRY.c.profile_id, ENTRY.c.state, ENTRY.c.entered_at, ENTRY.c.trigger_key).where(
        ENTRY.c.journey_id == journey_id
    )
    for pid, state, entered_at, key in select_in(
        session.connection(), query, ENTRY.c.profile_id, profile_ids, pg_type="text"
    ):
        item = past[pid]
        item.count += 1
        item.open |= state in OPEN_STATES
        entered_at = _aware(entered_at)
        item.last_entered = max(item.last_entered or entered_at, entered_at)
        if key:
            item.keys.add(key)
    return dict(past)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def refused(reentry: d.Reentry, past: _Past | None, candidate: Candidate, now: datetime) -> str | None:
    """Why the re-entry policy keeps ``candidate`` out (None: it may enter)."""
    if past is None or past.count == 0:
        return None
    if candidate.trigger_key and candidate.trigger_key in past.keys:
        return "entered for this trigger already"
    if reentry.mode == "never":
        return "this journey is entered once per profile"
    if reentry.mode == "after_exit" and past.open:
        return "the profile is in this journey now"
    if (
        reentry.cooldown_hours
        and past.last_entered
        and past.last_entered > now - timedelta(hours=reentry.cooldown_hours)
    ):
        return f"the profile entered less than {reentry.cooldown_hours} hours ago"
    return None


def enter_many(run: Run, journey: Journey, candidates: Sequence[Candidate]) -> list[JourneyEntry]:
    """Enter the candidates the re-entry policy lets in and advance them; the entries made.

    The journey must be active. Profiles that do not exist or were merged away are skipped.
    """
    assert journey.id is not None
    definition = definition_of(journey)
    session = run.session
    ids = list(dict.fromkeys(c.profile_id for c in candidates))
    live_query = sa.select(PROFILE.c.id).where(PROFILE.c.merged_into.is_(None))
    live = {pid for (pid,) in select_in(session.connection(), live_query, PROFILE.c.id, ids, pg_type="text")}
    history = _history(session, journey.id, [pid for pid in ids if pid in live])
    exclusive = definition.reentry.mode != "always"
    made: list[tuple[JourneyEntry, Candidate]] = []
    for candidate in candidates:
        if candidate.profile_id not in live:
            continue
        past = history.get(candidate.profile_id)
        if refused(definition.reentry, past, candidate, run.now):
            continue
        entry = JourneyEntry(
            journey_id=journey.id, profile_id=candidate.profile_id, step=definition.start,
            state=EntryState.active, entered_at=run.now, step_at=run.now, data=dict(candidate.data),
            trigger_key=candidate.trigger_key,
            open_key=f"{journey.id}:{candidate.profile_id}" if exclusive else None,
        )  # fmt: skip
        item = history.setdefault(candidate.profile_id, _Past())
        item.count += 1
        item.open, item.last_entered = True, run.now
        if candidate.trigger_key:
            item.keys.add(candidate.trigger_key)
        made.append((entry, candidate))
    inserted = _insert(session, made)
    for entry, candidate in inserted:
        assert entry.id is not None
        session.expunge(entry)  # from now on the run writes it back, with the others
        run.touch(entry)
        position = candidate.event_id if candidate.event_id is not None else run.position(entry)
        entry.first_event_id = entry.wait_event_id = position
        run.positions[entry.id] = position
    entries = [entry for entry, _ in inserted]
    advance(run, journey, entries)
    return entries


def _insert(
    session: Session, made: list[tuple[JourneyEntry, Candidate]]
) -> list[tuple[JourneyEntry, Candidate]]:
    """Insert the entries; one a concurrent trigger already opened (unique keys) is left out."""
    if not made:
        return []
    try:
        with session.begin_nested():
            session.add_all([entry for entry, _ in made])
            session.flush()
        return made
    except IntegrityError:
        pass
    kept = []
    for entry, candidate in made:
        fresh = JourneyEntry.model_validate(entry.model_dump(exclude={"id"}))
        try:
            with session.begin_nested():
                session.add(fresh)
                session.flush()
            kept.append((fresh, candidate))
        except IntegrityError:
            continue
    return kept


def advance(run: Run, journey: Journey, entries: Iterable[JourneyEntry]) -> None:
    """Run the steps of active entries until each waits or ends (a step that no longer exists
    sends its entries out of the journey)."""
    definition = definition_of(journey)
    running = [e for e in entries if e.state == EntryState.active]
    for _ in range(MAX_HOPS):
        if not running:
            return
        groups: defaultdict[str, list[JourneyEntry]] = defaultdict(list)
        for entry in running:
            groups[entry.step or ""].append(entry)
        running = []
        for key, group in groups.items():
            step = definition.steps.get(key)
            if step is None:
                for entry in group:
                    run.visit(entry, key, "exit:step removed")
                    run.end(entry, EntryState.exited)
                continue
            running.extend(HANDLERS[type(step)](run, journey, key, step, group))
    for entry in running:  # cannot happen with a checked definition; go on from the timer
        run.wait(entry, run.now)


def resume(run: Run, journey: Journey, entries: Sequence[JourneyEntry]) -> None:
    """Go on with waiting entries the caller holds: their wait ended (its time came) or their
    event came (``waiting_event`` cleared). The waiting visit gets its outcome."""
    definition = definition_of(journey)
    outcomes: dict[int, str] = {}
    going = []
    for entry in entries:
        assert entry.id is not None
        step = definition.steps.get(entry.step or "")
        came = entry.waiting_event is None
        run.touch(entry)
        entry.state, entry.due_at, entry.waiting_event = EntryState.active, None, None
        entry.version += 1
        if isinstance(step, d.WaitStep):
            outcomes[entry.id] = "waited"
            if not run.go(entry, step.next):
                continue
        elif isinstance(step, d.WaitForEventStep):
            outcomes[entry.id] = "event" if came else "timeout"
            if not run.go(entry, step.on_event if came else step.on_timeout):
                continue
        going.append(entry)  # a step that does not wait (after an edit) runs now
    _set_outcomes(run, outcomes)
    advance(run, journey, going)


def _set_outcomes(run: Run, outcomes: dict[int, str]) -> None:
    """Give each entry's latest visit (the wait it was in) its outcome."""
    if not outcomes:
        return
    run.write()  # the visit may have been made in this same run
    session = run.session
    query = sa.select(VISIT.c.entry_id, sa.func.max(VISIT.c.id)).group_by(VISIT.c.entry_id)
    latest = select_in(session.connection(), query, VISIT.c.entry_id, list(outcomes), pg_type="bigint")
    update_rows(session.connection(), VISIT, [{"id": vid, "outcome": outcomes[eid]} for eid, vid in latest])


def convert(run: Run, entries: Sequence[JourneyEntry], at: dict[int, datetime]) -> None:
    """The goal happened: entries in the journey end converted; a hold-out entry stays in the
    hold-out with ``converted_at``; and the entries' deliveries count the conversion."""
    ended: dict[int, str] = {}
    for entry in entries:
        assert entry.id is not None
        run.touch(entry)
        entry.converted_at = at[entry.id]
        entry.version += 1
        if entry.state in OPEN_STATES:
            ended[entry.id] = "goal"  # the wait it was in ends with the goal
        if entry.state != EntryState.holdout:
            run.end(entry, EntryState.converted)
            entry.state = EntryState.converted
    _set_outcomes(run, ended)
    connection = run.session.connection()
    for entry in entries:
        assert entry.id is not None
        connection.execute(
            sa.update(DELIVERY)
            .where(
                DELIVERY.c.entry_id == entry.id,
                DELIVERY.c.converted_at.is_(None),
                DELIVERY.c.test.is_(False),
                DELIVERY.c.sent_at.is_not(None) | (DELIVERY.c.state == DeliveryState.queued),
            )
            .values(converted_at=at[entry.id])
        )


def exit_all(
    session: Session, journey_id: int, now: datetime, outcome: str, steps: Sequence[str] | None = None
) -> int:
    """End the journey's open entries (only those at ``steps`` if given) as exited, the visit each
    stands in ending with ``outcome``; how many."""
    where = [ENTRY.c.journey_id == journey_id, ENTRY.c.state.in_(list(OPEN_STATES))]
    if steps is not None:
        if not steps:
            return 0
        where.append(ENTRY.c.step.in_(list(steps)))
    connection = session.connection()
    # The visit each entry stands in (its latest) ends with ``outcome``.
    latest = sa.select(sa.func.max(VISIT.c.id)).where(
        VISIT.c.entry_id.in_(sa.select(ENTRY.c.id).where(*where))
    )
    connection.execute(
        sa.update(VISIT).where(VISIT.c.id.in_(latest.group_by(VISIT.c.entry_id))).values(outcome=outcome)
    )
    result = connection.execute(
        sa.update(ENTRY)
        .where(*where)
        .values(
            state=EntryState.exited,
            ended_at=now,
            step=None,
            due_at=None,
            waiting_event=None,
            open_key=None,
            version=ENTRY.c.version + 1,
        )  # fmt: skip
    )
    return int(result.rowcount or 0)
