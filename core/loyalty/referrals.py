"""Referral: members' personal codes, who came with whose code, and rewarding both at the first purchase.

Every member has a referral code (made with the member row). A newcomer who comes with a code
(the program's ``referral_event`` carrying ``referral_code``, or the API) gets a *pending*
referral: one per person and program. Their first ``purchase_event`` decides it. A fraud guard
rejects it when both sides are one person after all: the same profile (merges included), an
identifier seen on both (a shared device's anonymous id, an email), or the same email or phone
trait. Otherwise it qualifies: the referrer earns ``referrer_points``, the referee
``referee_points``, each once (ledger keys ``referral:<id>:referrer`` / ``referral:<id>:referee``).
A purchase that is not the referee's first rejects a pending referral: the code was for a newcomer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.db.base import utcnow
from core.db.bulk import SQLITE_CHUNK, chunks, select_in
from core.identity.identifiers import normalize_email, normalize_phone
from core.ingest.models import Event, EventStatus, EventType
from core.loyalty import events
from core.loyalty.expiry import expires_at
from core.loyalty.ledger import MEMBER, LoyaltyError, Posted, Posting, lock_members, post
from core.loyalty.models import (
    EntryKind,
    LoyaltyMember,
    LoyaltyProgram,
    ProgramStatus,
    Referral,
    ReferralStatus,
)
from core.loyalty.state import EventRow, MemberState
from core.profiles.models import EventIdentity, Identity, Profile
from core.profiles.service import MAX_MERGE_HOPS

log = logging.getLogger(__name__)
EVENT = Event.__table__  # type: ignore[attr-defined]
PROFILE = Profile.__table__  # type: ignore[attr-defined]
IDENTITY = Identity.__table__  # type: ignore[attr-defined]
EVENT_IDENTITY = EventIdentity.__table__  # type: ignore[attr-defined]
CODE_PROPERTIES = ("referral_code", "referralCode")
CONTACT_TRAITS = ("email", "phone")


def followed_events(program: LoyaltyProgram) -> set[str]:
    """The event names referral reads: sign-ups carrying codes, and purchases."""
    return {program.referral_event, program.purchase_event}


def member_code(session: Session, program: LoyaltyProgram, profile_id: str) -> str:
    """The member's personal referral code (the profile becomes a member if it is not one)."""
    assert program.id is not None
    lock_members(session, program, [profile_id])
    query = sa.select(MEMBER.c.referral_code).where(
        MEMBER.c.program_id == program.id, MEMBER.c.profile_id == profile_id
    )
    return str(session.connection().execute(query).scalar_one())


def referred_by(session: Session, program_id: int, profile_id: str) -> Referral | None:
    """The referral the profile came with, if any."""
    query = select(Referral).where(Referral.program_id == program_id, Referral.referee_id == profile_id)
    return session.exec(query).first()


def referrals_of(session: Session, program_id: int, profile_id: str) -> list[Referral]:
    """The people the member referred (pending, qualified and rejected), newest first."""
    query = select(Referral).where(Referral.program_id == program_id, Referral.referrer_id == profile_id)
    return list(session.exec(query.order_by(col(Referral.id).desc())))


def _resolved(session: Session, profile_ids: Collection[str]) -> dict[str, str]:
    """Each profile id mapped to the profile it is now (following merges)."""
    now_at = {profile_id: profile_id for profile_id in profile_ids}
    ahead = set(profile_ids)
    query = sa.select(PROFILE.c.id, PROFILE.c.merged_into).where(PROFILE.c.merged_into.is_not(None))
    for _ in range(MAX_MERGE_HOPS):
        moved = {
            row.id: row.merged_into
            for row in select_in(session.connection(), query, PROFILE.c.id, ahead, pg_type="text")
        }
        if not moved:
            break
        ahead = set()
        for start, at in now_at.items():
            if at in moved:
                now_at[start] = moved[at]
                ahead.add(moved[at])
    return now_at


def apply_code(
    session: Session,
    program: LoyaltyProgram,
    referee_id: str,
    code: str,
    *,
    event_id: int | None = None,
    now: datetime | None = None,
) -> Referral:
    """Record that ``referee_id`` came with a member's ``code``: a pending referral.

    Applying the same code again returns the same referral. :class:`LoyaltyError` for an unknown
    code, the member's own code, or a person who already came with another code.
    """
    assert program.id is not None
    if program.status != ProgramStatus.active:
        raise LoyaltyError(f"Program {program.name!r} is archived: it takes no referrals.")
    wanted = code.strip().upper() if isinstance(code, str) else ""
    if not wanted:
        raise LoyaltyError("Give the referral code the customer came with.")
    query = select(LoyaltyMember).where(
        LoyaltyMember.program_id == program.id, LoyaltyMember.referral_code == wanted
    )
    referrer = session.exec(query).first()
    if referrer is None:
        raise LoyaltyError(f"Unknown referral code {wanted!r}: check it with the member who shared it.")
    # The referee becomes a member: their row is locked (one referral at a time per person), and
    # a merge moves the referral with the membership.
    lock_members(session, program, [referee_id])
    existing = referred_by(session, program.id, referee_id)
    if existing is not None:
        return _same_or_refused(existing, wanted)
    resolved = _resolved(session, [referee_id, referrer.profile_id])
    if resolved[referee_id] == resolved[referrer.profile_id]:
        raise LoyaltyError("This is the customer's own referral code: a member cannot refer themselves.")
    referral = Referral(
        program_id=program.id, referrer_id=referrer.profile_id, referee_id=referee_id, code=wanted,
        event_id=event_id, created_at=now or utcnow(),
    )  # fmt: skip
    try:
        with session.begin_nested():
            session.add(referral)
            session.flush()
    except IntegrityError:  # another transaction recorded this person's referral first
        existing = referred_by(session, program.id, referee_id)
        if existing is None:
            raise
        return _same_or_refused(existing, wanted)
    return referral


def _same_or_refused(existing: Referral, code: str) -> Referral:
    if existing.code == code:
        return existing
    raise LoyaltyError(
        f"This customer already came with the referral code {existing.code!r}: a customer is referred once."
    )


# --- the stream ---------------------------------------------------------------------------------
def _code_of(row: EventRow) -> str | None:
    for name in CODE_PROPERTIES:
        value = row.properties.get(name)
        if isinstance(value, str) and value.strip():
            return value
    return None


def _earliest_purchases(
    session: Session, program: LoyaltyProgram, profile_ids: Collection[str], until: datetime
) -> dict[str, tuple[datetime, int]]:
    """Each profile's first stored purchase (time, event id) up to ``until``."""
    query = sa.select(EVENT.c.id, EVENT.c.profile_id, EVENT.c.timestamp).where(
        EVENT.c.event == program.purchase_event,
        EVENT.c.type == EventType.track,
        EVENT.c.status == EventStatus.processed,
        EVENT.c.timestamp <= until,
    )
    first: dict[str, tuple[datetime, int]] = {}
    for row in select_in(session.connection(), query, EVENT.c.profile_id, profile_ids, pg_type="text"):
        at = row.timestamp if row.timestamp.tzinfo else row.timestamp.replace(tzinfo=UTC)
        key = (at, row.id)
        if row.profile_id not in first or key < first[row.profile_id]:
            first[row.profile_id] = key
    return first


def _identifiers(session: Session, profile_ids: Collection[str]) -> dict[str, set[tuple[str, str]]]:
    """The identifiers each profile holds, and those its events carried (a shared device's id too)."""
    found: dict[str, set[tuple[str, str]]] = {profile_id: set() for profile_id in profile_ids}
    connection = session.connection()
    held = sa.select(IDENTITY.c.profile_id, IDENTITY.c.type, IDENTITY.c.value)
    for row in select_in(connection, held, IDENTITY.c.profile_id, profile_ids, pg_type="text"):
        found[row.profile_id].add((row.type, row.value))
    carried = (
        sa.select(EVENT.c.profile_id, EVENT_IDENTITY.c.type, EVENT_IDENTITY.c.value)
        .select_from(EVENT_IDENTITY.join(EVENT, EVENT.c.id == EVENT_IDENTITY.c.event_id))
        .distinct()
    )
    for row in select_in(connection, carried, EVENT.c.profile_id, profile_ids, pg_type="text"):
        found[row.profile_id].add((row.type, row.value))
    return found


def _contact(name: str, value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return normalize_email(value) if name == "email" else normalize_phone(value, None)
    except ValueError:
        return re.sub(r"\s+", "", value).lower() if name == "email" else re.sub(r"\D", "", value) or None


def _contacts(session: Session, profile_ids: Collection[str]) -> dict[str, set[tuple[str, str]]]:
    """Each profile's email and phone traits, normalized."""
    found: dict[str, set[tuple[str, str]]] = {profile_id: set() for profile_id in profile_ids}
    query = sa.select(PROFILE.c.id, PROFILE.c.traits)
    for row in select_in(session.connection(), query, PROFILE.c.id, profile_ids, pg_type="text"):
        for name in CONTACT_TRAITS:
            value = _contact(name, (row.traits or {}).get(name))
            if value:
                found[row.id].add((name, value))
    return found


def _fraud(
    referrer: str,
    referee: str,
    identifiers: Mapping[str, set[tuple[str, str]]],
    contacts: Mapping[str, set[tuple[str, str]]],
) -> str | None:
    """Why the referrer and the referee look like one person (None: they do not)."""
    if referrer == referee:
        return "The referee and the referrer are the same person (their profiles were merged)."
    shared = identifiers.get(referrer, set()) & identifiers.get(referee, set())
    if shared:
        kinds = ", ".join(sorted({kind for kind, _ in shared}))
        return f"The referee and the referrer share an identifier ({kinds})."
    same = contacts.get(referrer, set()) & contacts.get(referee, set())
    if same:
        kinds = ", ".join(sorted({kind for kind, _ in same}))
        return f"The referee and the referrer have the same {kinds}."
    return None


def _apply_codes(session: Session, program: LoyaltyProgram, rows: Sequence[EventRow]) -> None:
    for row in rows:
        code = _code_of(row) if row.event == program.referral_event else None
        if code is None:
            continue
        try:
            apply_code(session, program, row.profile_id, code, event_id=row.id, now=row.timestamp)
        except LoyaltyError as exc:  # one bad code must not stop the stream
            log.info("referral code of event %s not applied: %s", row.id, exc)


def on_events(
    session: Session,
    program: LoyaltyProgram,
    rows: Sequence[EventRow],
    members: dict[str, MemberState],
    now: datetime,
) -> Posted:
    """Apply the codes that sign-ups carry, and decide pending referrals at first purchases.

    Qualified referrals post both rewards; decisions emit ``Loyalty Referral Qualified`` or
    ``Loyalty Referral Rejected``. What :func:`post` recorded is returned for the caller to record
    as internal events. Applying the same rows again changes nothing.
    """
    assert program.id is not None
    ordered = sorted(rows, key=lambda row: (row.timestamp, row.id))
    _apply_codes(session, program, ordered)
    purchases = [row for row in ordered if row.event == program.purchase_event]
    if not purchases:
        return Posted()
    pending: dict[str, Referral] = {}
    for chunk in chunks(sorted({row.profile_id for row in purchases}), SQLITE_CHUNK):
        query = select(Referral).where(
            Referral.program_id == program.id,
            Referral.status == ReferralStatus.pending,
            col(Referral.referee_id).in_(chunk),
        )
        pending.update((referral.referee_id, referral) for referral in session.exec(query))
    purchases = [row for row in purchases if row.profile_id in pending]
    if not purchases:
        return Posted()
    first = _earliest_purchases(session, program, set(pending), max(row.timestamp for row in purchases))
    resolved = _resolved(session, {r.referrer_id for r in pending.values()} | set(pending))
    involved = set(resolved.values())
    identifiers, contacts = _identifiers(session, involved), _contacts(session, involved)
    postings: list[Posting] = []
    decided: list[dict[str, Any]] = []
    for row in purchases:
        referral = pending[row.profile_id]
        if referral.status != ReferralStatus.pending:
            continue  # decided by an earlier purchase of this batch
        referrer, referee = resolved[referral.referrer_id], resolved[referral.referee_id]
        reason = _fraud(referrer, referee, identifiers, contacts)
        earlier = first.get(row.profile_id)
        if reason is None and earlier is not None and earlier < (row.timestamp, row.id):
            reason = f"Not the referee's first {program.purchase_event}: they were a customer before."
        referral.decided_at, referral.event_id = now, row.id
        if reason is not None:
            referral.status, referral.reason = ReferralStatus.rejected, reason[:300]
        else:
            referral.status = ReferralStatus.qualified
            postings += _rewards(program, referral, referrer, row)
        session.add(referral)
        decided += _decision_events(program, referral, referrer, referee, row.timestamp)
    session.flush()
    events.emit(session, decided)
    return post(session, program, postings, members=members, now=now) if postings else Posted()


def _rewards(program: LoyaltyProgram, referral: Referral, referrer: str, row: EventRow) -> list[Posting]:
    """The two postings of a qualified referral (none for a side that earns 0 points)."""
    sides = (
        ("referrer", referrer, program.referrer_points),
        ("referee", row.profile_id, program.referee_points),
    )
    return [
        Posting(
            profile_id=profile_id, points=points, kind=EntryKind.referral, key=f"referral:{referral.id}:{side}",
            reason=f"Referral ({side})", event_id=row.id, occurred_at=row.timestamp,
            expires_at=expires_at(program, row.timestamp), details={"referral_id": referral.id, "side": side},
        )
        for side, profile_id, points in sides
        if points > 0
    ]  # fmt: skip


def _decision_events(
    program: LoyaltyProgram, referral: Referral, referrer: str, referee: str, at: datetime
) -> list[dict[str, Any]]:
    """The decision, told on the referrer's profile and on the referee's."""
    name = (
        events.REFERRAL_QUALIFIED if referral.status == ReferralStatus.qualified else events.REFERRAL_REJECTED
    )
    common = {"program": program.key, "program_id": program.id, "referral_id": referral.id,
              "referrer_id": referrer, "referee_id": referee, "code": referral.code}  # fmt: skip
    if referral.status == ReferralStatus.rejected:
        common["reason"] = referral.reason
    sides = [("referrer", referrer, program.referrer_points), ("referee", referee, program.referee_points)]
    rows = []
    for role, profile_id, points in sides:
        if role == "referee" and referee == referrer:
            continue
        properties = {**common, "role": role}
        if referral.status == ReferralStatus.qualified:
            properties["points"] = points
        rows.append(events.event_row(name, profile_id, properties, at))
    return rows
