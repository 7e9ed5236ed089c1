"""Challenges and badges: "3 purchases in 30 days", "try 2 services", and what completing one awards.

A challenge counts a member's ``event`` events whose properties pass ``where`` (filters of the
segment rule language): all of them, or the distinct values of one property. Progress at an event
is what the window ending at that event holds: the last ``window_days`` days, or everything since
the challenge was activated; events before activation, or outside ``starts_at``-``ends_at``, never
count. The first time progress reaches the target, the member wins the badge (once, for good), the
challenge's points are posted to the ledger and ``Loyalty Badge Earned`` is emitted.

Progress is computed from the stored events, not added up event by event, so applying the same
events again, or in another order, gives the same progress and awards nothing twice.
"""

from __future__ import annotations

import bisect
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from core.db.base import utcnow
from core.db.bulk import select_in
from core.ingest.models import Event, EventStatus, EventType
from core.loyalty import events
from core.loyalty.expiry import expires_at
from core.loyalty.ledger import LoyaltyError, Posted, Posting, post
from core.loyalty.models import (
    Challenge,
    ChallengeGoal,
    ChallengeProgress,
    EntryKind,
    LoyaltyProgram,
    ProgramStatus,
    RuleStatus,
)
from core.loyalty.programs import get_program
from core.loyalty.state import EventRow, MemberState
from core.segments import rules as r
from core.segments.clock import Clock
from core.segments.semantics import json_matches

log = logging.getLogger(__name__)
EVENT = Event.__table__  # type: ignore[attr-defined]
PROGRESS = ChallengeProgress.__table__  # type: ignore[attr-defined]
MAX_SEEN = 100  # distinct values kept for display; a target above this still counts them all


class ChallengeNotFound(LookupError):
    """No challenge has this id in the program."""


class ChallengeRefused(LoyaltyError):
    """The change is not possible in the challenge's state (or its name is taken)."""


class ChallengeIn(BaseModel):
    """A challenge as a marketer writes it (see :class:`~core.loyalty.models.Challenge`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    badge: str = Field(min_length=1, max_length=100, description="What the member wins, e.g. 'Regular'.")
    event: str = Field(min_length=1, max_length=200, description="The event it counts, e.g. Order Completed.")
    where: list[dict[str, Any]] = Field(
        default_factory=list, max_length=50, description="Property filters, as in segment event conditions."
    )
    goal: ChallengeGoal = Field(
        default=ChallengeGoal.events, description="Count the events, or the distinct values of `property`."
    )
    property: str | None = Field(default=None, min_length=1, max_length=200)
    target: int = Field(default=1, ge=1, le=1_000_000)
    window_days: int | None = Field(
        default=None, ge=1, le=3_660, description="Count only the last N days (none: since activation)."
    )
    points: int = Field(default=0, ge=0, le=1_000_000)
    starts_at: datetime | None = None
    ends_at: datetime | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ChallengeIn:
        if self.goal == ChallengeGoal.distinct and not self.property:
            raise ValueError("a distinct challenge needs the property whose values it counts")
        for name in ("starts_at", "ends_at"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                setattr(self, name, moment.replace(tzinfo=UTC))
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must come after starts_at")
        return self


def parse_where(event: str, where: list[dict[str, Any]]) -> tuple[r.Trait, ...]:
    """The parsed property filters; :class:`LoyaltyError` with the parser's message if invalid."""
    try:
        parsed = r.parse_rule({"type": "event", "event": event, "where": where})
    except r.RuleError as exc:
        raise LoyaltyError(str(exc)) from exc
    assert isinstance(parsed, r.Behaviour)
    return parsed.where


def _check(session: Session, program_id: int, body: ChallengeIn, challenge_id: int | None) -> None:
    parse_where(body.event, body.where)
    query = select(Challenge.id).where(Challenge.program_id == program_id, Challenge.name == body.name)
    taken = session.exec(query).first()
    if taken is not None and taken != challenge_id:
        raise ChallengeRefused(f"The program already has a challenge named {body.name!r}.")


def _values(body: ChallengeIn) -> dict[str, Any]:
    values = body.model_dump()
    if body.goal == ChallengeGoal.events:
        values["property"] = None
    return values


def create_challenge(session: Session, program_id: int, body: ChallengeIn, actor: str = "") -> Challenge:
    """A new draft challenge; :class:`LoyaltyError` if it is not valid.

    :class:`~core.loyalty.programs.ProgramNotFound` for an unknown program. ``actor`` (who asks)
    goes to the log; callers record the audit entry.
    """
    program = get_program(session, program_id)
    if program.status != ProgramStatus.active:
        raise ChallengeRefused(f"Program {program.name!r} is archived: it takes no new challenges.")
    _check(session, program_id, body, None)
    challenge = Challenge(program_id=program_id, **_values(body))
    session.add(challenge)
    session.flush()
    log.info("loyalty challenge %s created by %s", challenge.id, actor or "-")
    return challenge


def get_challenge(session: Session, program_id: int, challenge_id: int) -> Challenge:
    """The challenge, or :class:`ChallengeNotFound`."""
    challenge = session.get(Challenge, challenge_id)
    if challenge is None or challenge.program_id != program_id:
        raise ChallengeNotFound(f"No challenge {challenge_id} in program {program_id}.")
    return challenge


def list_challenges(session: Session, program_id: int, status: RuleStatus | None = None) -> list[Challenge]:
    """The program's challenges, oldest first (only those of ``status`` if given)."""
    query = select(Challenge).where(Challenge.program_id == program_id)
    if status is not None:
        query = query.where(Challenge.status == status)
    return list(session.exec(query.order_by(col(Challenge.id))))


def update_challenge(
    session: Session, program_id: int, challenge_id: int, body: ChallengeIn, actor: str = ""
) -> Challenge:
    """Change a draft challenge; an active or ended one keeps its definition (members count on it)."""
    challenge = get_challenge(session, program_id, challenge_id)
    if challenge.status != RuleStatus.draft:
        raise ChallengeRefused(
            f"Challenge {challenge.name!r} is {challenge.status}: only a draft changes. "
            "End it and create a new challenge instead."
        )
    _check(session, program_id, body, challenge_id)
    for name, value in _values(body).items():
        setattr(challenge, name, value)
    session.add(challenge)
    log.info("loyalty challenge %s changed by %s", challenge_id, actor or "-")
    return challenge


def activate_challenge(
    session: Session, program_id: int, challenge_id: int, actor: str = "", *, now: datetime | None = None
) -> Challenge:
    """Start a draft challenge: events from now on count towards it."""
    challenge = get_challenge(session, program_id, challenge_id)
    if challenge.status != RuleStatus.draft:
        raise ChallengeRefused(
            f"Challenge {challenge.name!r} is {challenge.status}: only a draft is activated."
        )
    parse_where(challenge.event, challenge.where)
    challenge.status, challenge.activated_at = RuleStatus.active, now or utcnow()
    session.add(challenge)
    log.info("loyalty challenge %s activated by %s", challenge_id, actor or "-")
    return challenge


def end_challenge(session: Session, program_id: int, challenge_id: int, actor: str = "") -> Challenge:
    """End a challenge for good: nothing counts any more; badges won stay won."""
    challenge = get_challenge(session, program_id, challenge_id)
    if challenge.status == RuleStatus.ended:
        raise ChallengeRefused(f"Challenge {challenge.name!r} has ended already.")
    challenge.status = RuleStatus.ended
    session.add(challenge)
    log.info("loyalty challenge %s ended by %s", challenge_id, actor or "-")
    return challenge


def followed_events(session: Session, program_id: int) -> set[str]:
    """The event names the program's active challenges count."""
    query = select(Challenge.event).where(
        Challenge.program_id == program_id, Challenge.status == RuleStatus.active
    )
    return set(session.exec(query.distinct()))


# --- counting -------------------------------------------------------------------------------------
def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class _Live:
    """An active challenge with its filters parsed and the instants it counts from and until."""

    challenge: Challenge
    where: tuple[r.Trait, ...]
    since: datetime  # activation, or the start if later
    until: datetime | None

    def counts(self, row: EventRow) -> bool:
        """Whether the event is one the challenge counts at all (its window aside)."""
        return (
            row.event == self.challenge.event
            and self.since <= row.timestamp
            and (self.until is None or row.timestamp < self.until)
        )

    def low(self, at: datetime) -> datetime:
        """The first instant the window ending at ``at`` holds."""
        days = self.challenge.window_days
        return max(self.since, at - timedelta(days=days)) if days else self.since


@dataclass
class _Counted:
    """One member's matching events of one challenge, in order, with what they count."""

    keys: list[tuple[datetime, int]] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)


def _live(challenges: Iterable[Challenge]) -> list[_Live]:
    live = []
    for challenge in challenges:
        if challenge.activated_at is None:
            continue
        try:
            where = parse_where(challenge.event, challenge.where)
        except LoyaltyError:
            log.warning("challenge %s has filters that no longer parse: skipped", challenge.id, exc_info=True)
            continue
        since = _aware(challenge.activated_at)
        if challenge.starts_at is not None:
            since = max(since, _aware(challenge.starts_at))
        until = _aware(challenge.ends_at) if challenge.ends_at is not None else None
        live.append(_Live(challenge, where, since, until))
    return live


def _passes(live: _Live, properties: Mapping[str, Any], at: datetime, zone: ZoneInfo) -> bool:
    clock = Clock(now=at, zone=zone)
    return all(json_matches(f.test, properties.get(f.key), clock) for f in live.where)


def _counted_events(
    session: Session, live: _Live, rows: Sequence[EventRow], zone: ZoneInfo
) -> dict[str, _Counted]:
    """Per profile of ``rows``: the stored matching events any of their windows can hold."""
    low = min(live.low(row.timestamp) for row in rows)
    high = max(row.timestamp for row in rows)
    query = sa.select(EVENT.c.id, EVENT.c.profile_id, EVENT.c.timestamp, EVENT.c.properties).where(
        EVENT.c.event == live.challenge.event,
        EVENT.c.type == EventType.track,
        EVENT.c.status == EventStatus.processed,
        EVENT.c.timestamp >= low,
        EVENT.c.timestamp <= high,
    )
    found: dict[int, tuple[str, datetime, Mapping[str, Any]]] = {}
    profiles = {row.profile_id for row in rows}
    for stored in select_in(session.connection(), query, EVENT.c.profile_id, profiles, pg_type="text"):
        found[stored.id] = (stored.profile_id, _aware(stored.timestamp), stored.properties or {})
    for row in rows:  # the rows themselves count even if the caller has not stored them yet
        found.setdefault(row.id, (row.profile_id, row.timestamp, row.properties))
    counted: defaultdict[str, _Counted] = defaultdict(_Counted)
    prop = live.challenge.property
    for event_id, (profile_id, at, properties) in sorted(
        found.items(), key=lambda item: (item[1][1], item[0])
    ):
        if not _passes(live, properties, at, zone):
            continue
        value = properties.get(prop) if prop else None
        if live.challenge.goal == ChallengeGoal.distinct and value is None:
            continue
        counted[profile_id].keys.append((at, event_id))
        counted[profile_id].values.append(value)
    return counted


def _progress_at(live: _Live, counted: _Counted, row: EventRow) -> tuple[int, list[Any]]:
    """The progress, and the distinct values seen, of the window ending at ``row``."""
    start = bisect.bisect_left(counted.keys, (live.low(row.timestamp), -1))
    end = bisect.bisect_right(counted.keys, (row.timestamp, row.id))
    if live.challenge.goal == ChallengeGoal.events:
        return end - start, []
    distinct: dict[str, Any] = {}
    for value in counted.values[start:end]:
        distinct.setdefault(json.dumps(value, sort_keys=True), value)
    return len(distinct), list(distinct.values())[:MAX_SEEN]


def _save_progress(session: Session, inserts: list[dict[str, Any]], updates: list[dict[str, Any]]) -> None:
    connection = session.connection()
    if inserts:
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(PROGRESS).on_conflict_do_nothing(
            index_elements=["challenge_id", "profile_id"]
        )
        connection.execute(statement, inserts)
    if updates:
        statement = (
            PROGRESS.update()
            .where(PROGRESS.c.challenge_id == sa.bindparam("_challenge"), PROGRESS.c.profile_id == sa.bindparam("_profile"))
            .values({name: sa.bindparam(name) for name in ("progress", "target", "seen", "completed_at", "updated_at")})
        )  # fmt: skip
        keyed = [
            {"_challenge": u["challenge_id"], "_profile": u["profile_id"],
             **{k: v for k, v in u.items() if k not in ("challenge_id", "profile_id")}}
            for u in updates
        ]  # fmt: skip
        connection.execute(statement, keyed)


def on_events(
    session: Session,
    program: LoyaltyProgram,
    rows: Sequence[EventRow],
    members: dict[str, MemberState],
    now: datetime,
    *,
    zone: ZoneInfo | None = None,
) -> Posted:
    """Count ``rows`` towards the program's active challenges; award the badges they complete.

    Completing posts the challenge's points (one ledger entry per member and challenge, dated at
    the completing event) and emits ``Loyalty Badge Earned``; what :func:`post` recorded is
    returned for the caller to record as internal events. ``zone`` is the tenant's time zone
    (relative date filters read in it; default UTC).
    """
    assert program.id is not None
    zone = zone or ZoneInfo("UTC")
    names = {row.event for row in rows}
    challenges = [c for c in list_challenges(session, program.id, RuleStatus.active) if c.event in names]
    postings: list[Posting] = []
    badges: list[dict[str, Any]] = []
    for live in _live(challenges):
        mine = [
            row for row in rows if live.counts(row) and _passes(live, row.properties, row.timestamp, zone)
        ]
        if mine:
            _count(session, program, live, mine, now, zone, postings, badges)
    events.emit(session, badges)
    return post(session, program, postings, members=members, now=now) if postings else Posted()


def _count(
    session: Session,
    program: LoyaltyProgram,
    live: _Live,
    rows: list[EventRow],
    now: datetime,
    zone: ZoneInfo,
    postings: list[Posting],
    badges: list[dict[str, Any]],
) -> None:
    """Update the progress of the members of ``rows`` (matching events) in one challenge; add the
    postings and badge events of those who complete it."""
    challenge = live.challenge
    assert challenge.id is not None
    query = sa.select(PROGRESS).where(PROGRESS.c.challenge_id == challenge.id)
    profiles = {row.profile_id for row in rows}
    stored = {p.profile_id: p for p in select_in(session.connection(), query, PROGRESS.c.profile_id, profiles,
                                                 pg_type="text")}  # fmt: skip
    rows = sorted(
        (row for row in rows if row.profile_id not in stored or stored[row.profile_id].completed_at is None),
        key=lambda row: (row.timestamp, row.id),
    )
    if not rows:
        return
    counted = _counted_events(session, live, rows, zone)
    state: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.profile_id in state and state[row.profile_id]["completed_at"] is not None:
            continue  # the badge is won: later events change nothing
        progress, seen = _progress_at(live, counted[row.profile_id], row)
        completed = row.timestamp if progress >= challenge.target else None
        state[row.profile_id] = {"progress": progress, "seen": seen, "completed_at": completed}
        if completed is None:
            continue
        if challenge.points > 0:
            postings.append(
                Posting(
                    profile_id=row.profile_id, points=challenge.points, kind=EntryKind.challenge,
                    key=f"challenge:{challenge.id}:{row.profile_id}", reason=f"Challenge: {challenge.name}",
                    event_id=row.id, occurred_at=row.timestamp, expires_at=expires_at(program, row.timestamp),
                    details={"challenge_id": challenge.id, "badge": challenge.badge, "event": row.event},
                )
            )  # fmt: skip
        properties = {"program": program.key, "program_id": program.id, "challenge_id": challenge.id,
                      "badge": challenge.badge, "name": challenge.name, "points": challenge.points}  # fmt: skip
        badges.append(events.event_row(events.BADGE_EARNED, row.profile_id, properties, row.timestamp))
    inserts, updates = [], []
    for profile_id, values in state.items():
        values = {
            "challenge_id": challenge.id,
            "profile_id": profile_id,
            "target": challenge.target,
            **values,
        }
        before = stored.get(profile_id)
        if before is None:
            inserts.append({**values, "updated_at": now})
        elif any(
            before._mapping[name] != values[name] for name in ("progress", "seen", "target", "completed_at")
        ):
            updates.append({**values, "updated_at": now})
    _save_progress(session, inserts, updates)


# --- reading ----------------------------------------------------------------------------------------
def progress_of(
    session: Session, program_id: int, profile_id: str
) -> list[tuple[Challenge, ChallengeProgress | None]]:
    """The member's challenges: every active one, and ended ones they took part in, with progress."""
    query = select(Challenge).where(Challenge.program_id == program_id, Challenge.status != RuleStatus.draft)
    challenges = list(session.exec(query.order_by(col(Challenge.id))))
    ids = [c.id for c in challenges]
    found = session.exec(
        select(ChallengeProgress).where(
            ChallengeProgress.profile_id == profile_id, col(ChallengeProgress.challenge_id).in_(ids)
        )
    )
    by_challenge = {p.challenge_id: p for p in found}
    return [
        (c, by_challenge.get(c.id or 0))
        for c in challenges
        if c.status == RuleStatus.active or (c.id or 0) in by_challenge
    ]


def badges_of(session: Session, program_id: int, profile_id: str) -> list[str]:
    """The badges the member won in the program, in the order they were won."""
    query = (
        select(Challenge.badge)
        .join(ChallengeProgress, col(ChallengeProgress.challenge_id) == col(Challenge.id))
        .where(
            Challenge.program_id == program_id,
            ChallengeProgress.profile_id == profile_id,
            col(ChallengeProgress.completed_at).is_not(None),
        )
        .order_by(col(ChallengeProgress.completed_at), col(Challenge.id))
    )
    return list(session.exec(query))
