"""Keeping memberships current: in batch (a segment's SQL) and in real time (some profiles' facts).

Both paths write the same things: a membership row opened on entry and closed on exit, and an
internal event for each (``Segment Entered`` / ``Segment Exited``, properties ``segment_id``,
``segment`` and ``source``), which journeys start on. They take one tenant-wide lock, so a batch
and a real-time pass never both open the same stay. A segment's first evaluation marks its
entries ``initial`` (the audience as it was when the segment was made, not people who just came in).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.db.bulk import insert_rows, select_in, update_rows
from core.db.locks import transaction_lock
from core.internal_events.service import SEGMENT_ENTERED, SEGMENT_EXITED, emit_many
from core.plugin_api import SegmentConditionType
from core.segments import rules as r
from core.segments.clock import Clock
from core.segments.evaluate import evaluate, load_facts, needs_of
from core.segments.models import Segment, SegmentMembership, SegmentSize
from core.segments.service import active_segments
from core.segments.sql import give_room, members_query

MEMBERSHIP = SegmentMembership.__table__  # type: ignore[attr-defined]
SEGMENT = Segment.__table__  # type: ignore[attr-defined]
LOCK = "tessera.segments"


@dataclass
class Changes:
    """What one pass changed: (segment id, profile id) pairs that entered and exited."""

    entered: list[tuple[int, str]] = field(default_factory=list)
    exited: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Compiled:
    """An active segment with its parsed rule."""

    id: int
    name: str
    rule: r.Rule
    first: bool  # never evaluated yet


_cache: dict[tuple[Any, ...], list[Compiled]] = {}
# Each process looks at most once a second whether segments changed: real-time evaluation sees a
# new or changed segment up to a second later (its batch evaluation sees it at once).
VERSION_TTL_SECONDS = 1.0
_checked: dict[str, tuple[float, tuple[Any, ...]]] = {}


def forget_versions() -> None:
    """This process changed a segment: look again at the next real-time evaluation."""
    _checked.clear()


def compiled_segments(session: Session, conditions: Mapping[str, SegmentConditionType]) -> list[Compiled]:
    """Every active segment, parsed (cached per process while no segment changes; checked each second).

    A segment whose rule no longer parses (a plugin it uses was disabled) is skipped: its members
    stay as they were until it is fixed.
    """
    database = str(session.get_bind().engine.url)
    checked = _checked.get(database)
    if checked is not None and time.monotonic() - checked[0] < VERSION_TTL_SECONDS:
        versions = checked[1]
    else:
        query = sa.select(SEGMENT.c.id, SEGMENT.c.updated_at, SEGMENT.c.counted_at.is_(None))
        rows = session.connection().execute(query.where(SEGMENT.c.archived_at.is_(None))).all()
        versions = tuple(sorted(tuple(row) for row in rows))  # no rules: read only when one changed
        _checked[database] = (time.monotonic(), versions)
    key = (database, tuple(sorted(conditions)), versions)
    if key not in _cache:
        segments = active_segments(session)
        stored = {s.id: s.rule for s in segments}
        parsed = []
        for segment in segments:
            assert segment.id is not None
            context = r.RuleContext(segment_rule=stored.get, self_id=segment.id, conditions=conditions)
            try:
                parsed.append(Compiled(segment.id, segment.name, r.parse_rule(segment.rule, context),
                                       segment.counted_at is None))  # fmt: skip
            except r.RuleError:
                continue
        if len(_cache) > 64:
            _cache.clear()
        _cache[key] = parsed
    return _cache[key]


def _event(
    name: str, segment: Compiled | Segment, profile_id: str, at: datetime, source: str
) -> dict[str, Any]:
    properties: dict[str, Any] = {"segment_id": segment.id, "segment": segment.name, "source": source}
    if source == "initial":
        properties["initial"] = True
    return {"name": name, "profile_id": profile_id, "properties": properties, "occurred_at": at}


def refresh_segment(session: Session, segment: Segment, rule: r.Rule, clock: Clock) -> Changes:
    """Evaluate one segment in SQL and bring its memberships, size and size history up to date."""
    transaction_lock(session, LOCK)
    give_room(session)
    connection = session.connection()
    assert segment.id is not None
    now = clock.now
    members = set(connection.execute(members_query(rule, session.get_bind().dialect.name, clock)).scalars())
    current: dict[str, int] = dict(
        connection.execute(
            sa.select(MEMBERSHIP.c.profile_id, MEMBERSHIP.c.id).where(
                MEMBERSHIP.c.segment_id == segment.id, MEMBERSHIP.c.exited_at.is_(None)
            )
        ).all()
    )
    source = "initial" if segment.counted_at is None else "batch"
    entered = sorted(members - set(current))
    exited = sorted(set(current) - members)
    insert_rows(connection, MEMBERSHIP, [{"segment_id": segment.id, "profile_id": p, "entered_at": now,
                                          "exited_at": None} for p in entered])  # fmt: skip
    update_rows(connection, MEMBERSHIP, [{"id": current[p], "exited_at": now} for p in exited])
    emit_many(session, [_event(SEGMENT_ENTERED, segment, p, now, source) for p in entered]
              + [_event(SEGMENT_EXITED, segment, p, now, "batch") for p in exited])  # fmt: skip
    segment.size, segment.counted_at = len(members), now
    forget_versions()
    session.add(segment)
    _record_size(session, segment.id, len(members), now)
    return Changes([(segment.id, p) for p in entered], [(segment.id, p) for p in exited])


def _record_size(session: Session, segment_id: int, size: int, now: datetime) -> None:
    day = now.date()
    row = session.exec(
        select(SegmentSize).where(SegmentSize.segment_id == segment_id, SegmentSize.day == day)
    ).first()
    row = row or SegmentSize(segment_id=segment_id, day=day, size=size)
    row.size, row.at = size, now
    session.add(row)


def refresh_all(session: Session, clock: Clock, conditions: Mapping[str, SegmentConditionType]) -> Changes:
    """Evaluate every active segment in SQL (a segment whose rule no longer parses is skipped)."""
    total = Changes()
    for compiled in compiled_segments(session, conditions):
        segment = session.get(Segment, compiled.id)
        assert segment is not None
        changes = refresh_segment(session, segment, compiled.rule, clock)
        total.entered += changes.entered
        total.exited += changes.exited
    return total


def reevaluate(
    session: Session,
    profile_ids: Collection[str],
    clock: Clock,
    conditions: Mapping[str, SegmentConditionType],
) -> Changes:
    """Decide every active segment for these profiles from their facts; write entries and exits.

    Segments never evaluated in batch yet are left to their first batch evaluation.
    """
    segments = [s for s in compiled_segments(session, conditions) if not s.first]
    if not segments or not profile_ids:
        return Changes()
    facts = load_facts(session, profile_ids, needs_of([s.rule for s in segments], clock))
    inside = {(s.id, pid) for pid in profile_ids if (fact := facts.get(pid)) is not None
              for s in segments if evaluate(s.rule, fact, clock)}  # fmt: skip
    changes = _diff(segments, profile_ids, inside, _current(session, profile_ids))
    if not changes.entered and not changes.exited:
        return changes  # the common case: nothing to write, no lock to wait for
    transaction_lock(session, LOCK)
    current = _current(session, profile_ids)  # again, under the lock: a batch pass may have written
    changes = _diff(segments, profile_ids, inside, current)
    names = {s.id: s for s in segments}
    connection = session.connection()
    insert_rows(connection, MEMBERSHIP, [{"segment_id": sid, "profile_id": pid, "entered_at": clock.now,
                                          "exited_at": None} for sid, pid in changes.entered])  # fmt: skip
    update_rows(
        connection, MEMBERSHIP, [{"id": current[pair], "exited_at": clock.now} for pair in changes.exited]
    )
    emit_many(session, [_event(SEGMENT_ENTERED, names[sid], pid, clock.now, "realtime") for sid, pid in changes.entered]
              + [_event(SEGMENT_EXITED, names[sid], pid, clock.now, "realtime") for sid, pid in changes.exited])  # fmt: skip
    return changes


def _current(session: Session, profile_ids: Collection[str]) -> dict[tuple[int, str], int]:
    """The open stays of these profiles: (segment id, profile id) → membership id."""
    query = sa.select(MEMBERSHIP.c.id, MEMBERSHIP.c.segment_id, MEMBERSHIP.c.profile_id).where(
        MEMBERSHIP.c.exited_at.is_(None)
    )
    rows = select_in(session.connection(), query, MEMBERSHIP.c.profile_id, profile_ids, pg_type="text")
    return {(row.segment_id, row.profile_id): row.id for row in rows}


def _diff(
    segments: list[Compiled], profile_ids: Collection[str], inside: set[tuple[int, str]],
    current: Mapping[tuple[int, str], int],
) -> Changes:  # fmt: skip
    """Who enters (inside, no open stay) and who exits (an open stay, no longer inside)."""
    changes = Changes()
    for profile_id in profile_ids:
        for segment in segments:
            pair = (segment.id, profile_id)
            if pair in inside and pair not in current:
                changes.entered.append(pair)
            elif pair not in inside and pair in current:
                changes.exited.append(pair)
    return changes


def close_memberships(session: Session, segment: Segment) -> int:
    """End every current stay in ``segment`` (it is being archived); how many ended."""
    transaction_lock(session, LOCK)
    now = segment.updated_at
    current = list(
        session.exec(
            select(SegmentMembership).where(
                SegmentMembership.segment_id == segment.id, col(SegmentMembership.exited_at).is_(None)
            )
        )
    )
    update_rows(session.connection(), MEMBERSHIP, [{"id": m.id, "exited_at": now} for m in current])
    emit_many(session, [_event(SEGMENT_EXITED, segment, m.profile_id, now, "archived") for m in current])
    return len(current)
