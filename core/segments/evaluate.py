"""Deciding rules for given profiles in memory: the real-time path.

:func:`load_facts` reads, for many profiles at once and in a handful of queries, only what the
rules need (:class:`Needs`): the profile row, computed traits, granted consents, the events the
behaviour conditions name (since the earliest window), and the standing in the loyalty programs
the loyalty conditions name. :func:`evaluate` then decides each rule for each profile with
:mod:`core.segments.semantics`, which the SQL compiler mirrors.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from core.db.bulk import select_in
from core.loyalty.standing import Standing, standings
from core.plugin_api import ProfileSnapshot
from core.profiles.snapshots import snapshot
from core.segments import rules as r
from core.segments.clock import Clock
from core.segments.semantics import is_number, json_matches, measure_matches, typed_matches
from core.segments.sql import CONSENT, EVENT, PROFILE, TRAITS, window_bounds

COMPUTED_COLUMNS = [name for name, f in r.COMPUTED_FIELDS.items() if f.table == "computed"]


@dataclass(frozen=True)
class Needs:
    """What deciding some rules takes: event names (and since when), computed traits, consents,
    plugin snapshots, loyalty programs."""

    events: frozenset[str] = frozenset()
    since: datetime | None = None  # None with events: all time
    computed: bool = False
    consents: bool = False
    snapshot: bool = False
    loyalty: frozenset[int] = frozenset()


def needs_of(rules: Iterable[r.Rule], clock: Clock) -> Needs:
    """The union of what ``rules`` read."""
    names: set[str] = set()
    programs: set[int] = set()
    lows: list[datetime | None] = []
    computed = consents = plugins = False
    for rule in rules:
        for node in r.walk(rule):
            if isinstance(node, r.Behaviour):
                names.add(node.event)
                lows.append(window_bounds(node.window, clock)[0])
            computed |= isinstance(node, r.Computed) and node.field.table == "computed"
            consents |= isinstance(node, r.Consent)
            plugins |= isinstance(node, r.PluginCondition)
            if isinstance(node, r.Loyalty):
                programs.add(node.program_id)
    since = None if not lows or None in lows else min(low for low in lows if low is not None)
    return Needs(frozenset(names), since, computed, consents, plugins, frozenset(programs))


@dataclass
class Facts:
    """What is known of one profile for deciding rules."""

    profile_id: str
    active: bool = True
    traits: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    consents: set[tuple[str, str]] = field(default_factory=set)
    events: dict[str, list[tuple[datetime, dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    snapshot: ProfileSnapshot | None = None
    loyalty: dict[int, Standing] = field(default_factory=dict)  # by program id, where a member


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def load_facts(session: Session, profile_ids: Collection[str], needs: Needs) -> dict[str, Facts]:
    """The facts of each of ``profile_ids`` that exists (merged-away ones are inactive)."""
    connection = session.connection()
    facts: dict[str, Facts] = {}
    columns = [
        PROFILE.c.id,
        PROFILE.c.merged_into,
        PROFILE.c.traits,
        PROFILE.c.first_seen,
        PROFILE.c.last_seen,
    ]
    source: Any = PROFILE
    if needs.computed:  # in the same round trip
        columns += [TRAITS.c[name] for name in COMPUTED_COLUMNS]
        source = PROFILE.outerjoin(TRAITS, TRAITS.c.profile_id == PROFILE.c.id)
    query = sa.select(*columns).select_from(source)
    for row in select_in(connection, query, PROFILE.c.id, profile_ids, pg_type="text"):
        fields = {"first_seen": row.first_seen, "last_seen": row.last_seen}
        if needs.computed:
            fields.update({name: row._mapping[name] for name in COMPUTED_COLUMNS})
        facts[row.id] = Facts(row.id, active=row.merged_into is None, traits=row.traits or {}, fields=fields)
    ids = list(facts)
    if needs.consents:
        query = sa.select(CONSENT.c.profile_id, CONSENT.c.channel, CONSENT.c.purpose).where(
            CONSENT.c.granted.is_(True)
        )
        for row in select_in(connection, query, CONSENT.c.profile_id, ids, pg_type="text"):
            facts[row.profile_id].consents.add((row.channel, row.purpose))
    if needs.events:
        query = sa.select(EVENT.c.profile_id, EVENT.c.event, EVENT.c.timestamp, EVENT.c.properties).where(
            EVENT.c.event.in_(sorted(needs.events))
        )
        if needs.since is not None:
            query = query.where(EVENT.c.timestamp >= needs.since)
        for row in select_in(connection, query, EVENT.c.profile_id, ids, pg_type="text"):
            facts[row.profile_id].events[row.event].append((_aware(row.timestamp), row.properties or {}))
    if needs.loyalty:
        for pid, held in standings(session, ids, program_ids=needs.loyalty).items():
            facts[pid].loyalty = {standing.program_id: standing for standing in held}
    if needs.snapshot:
        for item in facts.values():
            item.snapshot = snapshot(session, item.profile_id) if item.active else None
    return facts


def evaluate(rule: r.Rule, facts: Facts, clock: Clock) -> bool:
    """Whether the profile matches ``rule`` (an inactive, merged-away profile matches nothing)."""
    return facts.active and _holds(rule, facts, clock)


def _holds(rule: r.Rule, facts: Facts, clock: Clock) -> bool:
    if isinstance(rule, r.Group):
        results = (_holds(child, facts, clock) for child in rule.children)
        return all(results) if rule.kind == "all" else any(results)
    if isinstance(rule, r.Not):
        return not _holds(rule.child, facts, clock)
    if isinstance(rule, r.Member):
        return _holds(rule.rule, facts, clock)
    if isinstance(rule, r.Trait):
        return json_matches(rule.test, facts.traits.get(rule.key), clock)
    if isinstance(rule, r.Computed):
        value = facts.fields.get(rule.field.key)
        if value is None and rule.field.zero_when_missing:
            value = 0
        return typed_matches(rule.test, rule.field.kind, value, clock)
    if isinstance(rule, r.Behaviour):
        return _behaviour(rule, facts, clock)
    if isinstance(rule, r.Consent):
        return (rule.channel, rule.purpose) in facts.consents
    if isinstance(rule, r.Loyalty):
        value = _loyalty_value(facts.loyalty.get(rule.program_id), rule.field.key)
        if value is None and rule.field.zero_when_missing:
            value = 0
        return typed_matches(rule.test, rule.field.kind, value, clock)
    assert isinstance(rule, r.PluginCondition)
    if facts.snapshot is None:
        facts.snapshot = ProfileSnapshot(id=facts.profile_id, traits=facts.traits)
    return bool(rule.type.evaluate(rule.params, facts.snapshot))


def _loyalty_value(standing: Standing | None, key: str) -> Any:
    if standing is None:
        return None
    return len(standing.badges) if key == "badges" else getattr(standing, key)


def _behaviour(rule: r.Behaviour, facts: Facts, clock: Clock) -> bool:
    low, high = window_bounds(rule.window, clock)
    matching = [
        properties
        for at, properties in facts.events.get(rule.event, [])
        if (low is None or at >= low)
        and (high is None or at < high)
        and all(json_matches(f.test, properties.get(f.key), clock) for f in rule.where)
    ]
    if rule.measure == "count":
        value: float | None = float(len(matching))
    else:
        key = rule.property or ""
        numbers = [float(p[key]) for p in matching if is_number(p.get(key))]
        if rule.measure == "sum":
            value = sum(numbers)
        else:
            value = sum(numbers) / len(numbers) if numbers else None
    return measure_matches(value, rule.test)
