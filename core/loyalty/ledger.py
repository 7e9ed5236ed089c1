"""The points ledger: recording balance changes once each, and the member sums derived from them.

Every change of a balance is a :class:`~core.loyalty.models.LedgerEntry` (immutable: a mistake is
corrected by another entry). :func:`post` records many at once for one program: it locks the
members' rows (creating members as needed), skips postings whose ``key`` is already recorded,
refuses (or, with ``clamp``, shrinks) debits beyond the balance, inserts the entries, and updates
the member sums in the same transaction, so ``balance`` always equals the sum of the ledger.
Tier upgrades follow at once (:mod:`core.loyalty.tiers`), and :func:`post` tells what changed
(:class:`Posted`) so callers can emit events.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlmodel import Session, col, select

from core.db.base import utcnow
from core.db.bulk import insert_new_rows, insert_rows, select_in
from core.loyalty import tiers
from core.loyalty.models import EntryKind, LedgerEntry, LoyaltyMember, LoyaltyProgram
from core.loyalty.state import MemberState, TierMove

LEDGER = LedgerEntry.__table__  # type: ignore[attr-defined]
MEMBER = LoyaltyMember.__table__  # type: ignore[attr-defined]
# Referral codes avoid letters and digits people mix up (0/O, 1/I/L).
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
MEMBER_COLUMNS = ("balance", "earned", "redeemed", "expired", "tier_id", "tier_since", "period", "qualifying")


class LoyaltyError(ValueError):
    """A loyalty operation is refused; the message says why, in words for the person asking."""


class InsufficientPoints(LoyaltyError):
    """A debit would take a balance below zero."""


@dataclass
class Posting:
    """A balance change to record: ``points`` (signed) for ``profile_id``, once per ``key``."""

    profile_id: str
    points: int
    kind: EntryKind
    key: str
    qualifying: float = 0
    rule_id: int | None = None
    event_id: int | None = None
    order_id: str | None = None
    reverses_id: int | None = None
    redemption_id: int | None = None
    actor: str | None = None
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    occurred_at: datetime | None = None
    expires_at: datetime | None = None


@dataclass
class Posted:
    """What one :func:`post` recorded: the new entries (with ids), and the tier moves."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    tier_moves: list[TierMove] = field(default_factory=list)

    @property
    def profiles(self) -> set[str]:
        """Profiles whose balance or tier changed."""
        return {e["profile_id"] for e in self.entries} | {m.profile_id for m in self.tier_moves}

    def extend(self, other: Posted) -> None:
        """Add what ``other`` recorded."""
        self.entries += other.entries
        self.tier_moves += other.tier_moves


def new_referral_code() -> str:
    """A fresh member referral code (8 characters, about 40 bits)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))


def _insert_members(session: Session, program_id: int, profile_ids: Collection[str], now: datetime) -> None:
    connection = session.connection()
    ordered = sorted(profile_ids)
    codes = [new_referral_code() for _ in ordered]
    if connection.dialect.name == "postgresql":  # one statement over arrays, not one per member
        connection.execute(
            sa.text(
                "INSERT INTO loyalty_member (program_id, profile_id, referral_code, joined_at, updated_at, balance, "
                "earned, redeemed, expired, period, qualifying) SELECT :program, p, c, :now, :now, 0, 0, 0, 0, 0, 0 "
                "FROM unnest(CAST(:profiles AS text[]), CAST(:codes AS text[])) AS v(p, c) "
                "ON CONFLICT (program_id, profile_id) DO NOTHING"
            ),
            {"program": program_id, "now": now, "profiles": ordered, "codes": codes},
        )
        return
    rows = [
        {"program_id": program_id, "profile_id": p, "referral_code": code, "joined_at": now, "updated_at": now,
         "balance": 0, "earned": 0, "redeemed": 0, "expired": 0, "period": 0, "qualifying": 0}
        for p, code in zip(ordered, codes, strict=True)
    ]  # fmt: skip
    for start in range(0, len(rows), 2_000):
        statement = sqlite.insert(MEMBER).on_conflict_do_nothing(index_elements=["program_id", "profile_id"])
        connection.execute(statement, rows[start : start + 2_000])


def lock_members(
    session: Session, program: LoyaltyProgram, profile_ids: Collection[str], *, create: bool = True
) -> dict[str, MemberState]:
    """The members' rows, locked until the transaction ends (created first when ``create``).

    Rows are locked in profile order, so two transactions locking overlapping members never
    deadlock. Tier periods that ended meanwhile are rolled over here (see :mod:`core.loyalty.tiers`).
    """
    assert program.id is not None
    connection = session.connection()
    wanted = sorted(set(profile_ids))
    if not wanted:
        return {}
    query = sa.select(MEMBER).where(MEMBER.c.program_id == program.id).order_by(MEMBER.c.profile_id)
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    found = {
        row.profile_id: row
        for row in select_in(connection, query, MEMBER.c.profile_id, wanted, pg_type="text")
    }
    missing = {p for p in wanted if p not in found}
    if missing and create:
        _insert_members(session, program.id, missing, utcnow())
        for row in select_in(connection, query, MEMBER.c.profile_id, sorted(missing), pg_type="text"):
            found[row.profile_id] = row
    states: dict[str, MemberState] = {}
    for profile_id, row in found.items():
        states[profile_id] = MemberState(
            profile_id, **{name: row._mapping[name] for name in MEMBER_COLUMNS}, new=profile_id in missing
        )
    return states


def post(
    session: Session,
    program: LoyaltyProgram,
    postings: Sequence[Posting],
    *,
    clamp: bool = False,
    members: dict[str, MemberState] | None = None,
    now: datetime | None = None,
    fresh: bool = False,
) -> Posted:
    """Record ``postings`` (in order) that are not recorded yet, and update the member sums.

    A debit beyond the balance raises :class:`InsufficientPoints`, or with ``clamp`` takes only
    what is there (the rest is noted in the entry's ``details["uncovered"]``; nothing is
    recorded when nothing is there). ``members`` are rows the caller already locked. ``fresh``
    says no key can be recorded yet (entries of events the engine has not applied, which it
    records with the event marked applied), sparing the lookup.
    """
    assert program.id is not None
    now = now or utcnow()
    if not postings:
        return Posted()
    connection = session.connection()
    if members is None:
        members = lock_members(session, program, [p.profile_id for p in postings])
    else:
        missing = {p.profile_id for p in postings} - set(members)
        members.update(lock_members(session, program, missing))
    taken: set[str] = set()
    period_of = tiers.period_finder(program)
    if not fresh:
        keys = list(dict.fromkeys(p.key for p in postings))
        taken = {
            row.key
            for row in select_in(connection, sa.select(LEDGER.c.key), LEDGER.c.key, keys, pg_type="text")
        }
    rows: list[dict[str, Any]] = []
    touched: dict[str, MemberState] = {}
    rolled: list[TierMove] = []
    for posting in postings:
        if posting.key in taken:
            continue
        taken.add(posting.key)
        member = members[posting.profile_id]
        points = posting.points
        details = dict(posting.details)
        if points < 0 and member.balance + points < 0:
            if not clamp:
                raise InsufficientPoints(
                    f"The balance is {member.balance} {program.currency}: {-points} cannot be taken."
                )
            details["uncovered"] = -points - member.balance
            points = -member.balance
            if points == 0:
                continue
        occurred = posting.occurred_at or now
        period = period_of(occurred)
        moved = tiers.roll_over(session, program, member, occurred, period)
        if moved is not None:
            rolled.append(moved)
        member.apply(posting.kind, points)
        if period == member.period:
            member.qualifying += posting.qualifying
        touched[member.profile_id] = member
        rows.append(
            {"program_id": program.id, "profile_id": posting.profile_id, "points": points, "kind": posting.kind,
             "key": posting.key, "qualifying": posting.qualifying, "rule_id": posting.rule_id,
             "event_id": posting.event_id, "order_id": posting.order_id, "reverses_id": posting.reverses_id,
             "redemption_id": posting.redemption_id, "actor": posting.actor, "reason": posting.reason,
             "details": details, "occurred_at": occurred, "recorded_at": now, "expires_at": posting.expires_at}
        )  # fmt: skip
    posted = Posted(tier_moves=rolled)
    if not rows:
        save_members(session, program, touched.values(), now)
        return posted
    _insert_entries(connection, rows)
    for row in rows:
        if row["id"] is None:  # a concurrent transaction recorded the same cause first: undo ours
            member = members[row["profile_id"]]
            member.apply(row["kind"], -row["points"])
            if period_of(row["occurred_at"]) == member.period:
                member.qualifying -= row["qualifying"]
    posted.entries = [row for row in rows if row["id"] is not None]
    posted.tier_moves += tiers.upgrade(session, program, touched.values(), now)
    save_members(session, program, touched.values(), now)
    return posted


def _insert_entries(connection: Any, rows: list[dict[str, Any]]) -> None:
    """Insert the entries, setting each row's ``id`` (None where its key was taken meanwhile).

    On PostgreSQL the ids come from the sequence and the rows go by COPY, several times faster
    than an insert returning ids; the keys were checked under the members' locks, and a key a
    concurrent transaction took anyway fails the transaction, which its job runs again.
    """
    if connection.dialect.name == "postgresql":
        sequence = sa.text(
            "SELECT nextval(pg_get_serial_sequence('loyalty_ledger', 'id')) FROM generate_series(1, :n)"
        )
        for row, entry_id in zip(rows, connection.execute(sequence, {"n": len(rows)}).scalars(), strict=True):
            row["id"] = entry_id
        insert_rows(connection, LEDGER, rows)
        return
    inserted = insert_new_rows(connection, LEDGER, rows, unique="key", returning=["id", "key"])
    id_of = {key: entry_id for entry_id, key in inserted}
    for row in rows:
        row["id"] = id_of.get(row["key"])


def save_members(
    session: Session, program: LoyaltyProgram, members: Collection[MemberState], now: datetime
) -> None:
    """Write the members' sums, tiers and periods back to their rows."""
    rows = [
        {"program_id": program.id, "profile_id": m.profile_id, "updated_at": now,
         **{name: getattr(m, name) for name in MEMBER_COLUMNS}}
        for m in members
    ]  # fmt: skip
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":  # one statement over arrays, not one per member
        types = {"balance": "int", "earned": "int", "redeemed": "int", "expired": "int", "tier_id": "int",
                 "tier_since": "timestamptz", "period": "int", "qualifying": "float8"}  # fmt: skip
        names = ["profile_id", *MEMBER_COLUMNS]
        arrays = ", ".join(f"CAST(:{name} AS {types.get(name, 'text')}[])" for name in names)
        sets = ", ".join(f"{name} = v.{name}" for name in MEMBER_COLUMNS)
        connection.execute(
            sa.text(
                f"UPDATE loyalty_member AS m SET {sets}, updated_at = :now FROM unnest({arrays}) AS v({', '.join(names)}) "
                "WHERE m.program_id = :program AND m.profile_id = v.profile_id"
            ),
            {"program": program.id, "now": now, **{name: [row[name] for row in rows] for name in names}},
        )
        return
    statement = (
        MEMBER.update()
        .where(
            MEMBER.c.program_id == sa.bindparam("_program"), MEMBER.c.profile_id == sa.bindparam("_profile")
        )
        .values({name: sa.bindparam(name) for name in (*MEMBER_COLUMNS, "updated_at")})
    )
    connection.execute(
        statement, [{**row, "_program": row["program_id"], "_profile": row["profile_id"]} for row in rows]
    )


def ledger_sums(session: Session, program_id: int, profile_id: str) -> dict[str, int]:
    """What the member's ledger adds up to, computed from the entries (for checks and repairs)."""
    sums: defaultdict[str, int] = defaultdict(int)
    query = sa.select(LEDGER.c.kind, sa.func.sum(LEDGER.c.points)).where(
        LEDGER.c.program_id == program_id, LEDGER.c.profile_id == profile_id
    )
    for kind, total in session.connection().execute(query.group_by(LEDGER.c.kind)):
        state = MemberState(profile_id)
        state.apply(EntryKind(kind), int(total or 0))
        for name in ("balance", "earned", "redeemed", "expired"):
            sums[name] += getattr(state, name)
    return {name: sums[name] for name in ("balance", "earned", "redeemed", "expired")}


def entries_of(
    session: Session, program_id: int, profile_id: str, limit: int = 100, before_id: int | None = None
) -> list[LedgerEntry]:
    """A member's ledger entries, newest first (``before_id`` pages further back)."""
    query = select(LedgerEntry).where(
        LedgerEntry.program_id == program_id, LedgerEntry.profile_id == profile_id
    )
    if before_id is not None:
        query = query.where(col(LedgerEntry.id) < before_id)
    return list(session.exec(query.order_by(col(LedgerEntry.id).desc()).limit(limit)))
