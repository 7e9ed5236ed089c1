"""Identity resolution: which identifiers belong to one customer, as a pure function.

Nothing here touches a database. :func:`resolve` takes a set of observations and returns the
clusters (one per customer profile) they imply; the same set always gives the same answer, in
whatever order its observations arrived.

Vocabulary
==========

- An **identifier** is a ``(type, normalized value)`` pair, e.g. ``("email", "ann@example.com")``.
  Values are normalized beforehand (:mod:`core.identity.identifiers`).
- An **observation** is one event's evidence: the identifiers it carried together, meaning "these
  belong to the same person", and its ``event_key`` ``(timestamp, message_id)``, which orders it.
- A **cluster** is a set of identifiers resolved to one person (one profile). Every identifier
  seen is in exactly one cluster. A cluster's **anchor** is its earliest identifier by
  ``(first-seen event_key, identifier)``; the anchor is the cluster's id. It changes only when
  the cluster merges with an older one, or when an event older than its anchor arrives late.
- Types are ranked by **strength**: a *unique* type (``unique_per_profile``: a profile holds at most
  one value, e.g. ``user_id``) ranks 0; a *strong* type (``merges_known_profiles`` true, e.g.
  ``email``, ``phone``) ranks 1; a *weak* type (``merges_known_profiles`` false, e.g.
  ``anonymous_id``, device tokens) ranks 2. A type that is both unique and weak ranks 0 but still
  counts as weak for rule (b). An observation's **strongest identifier** is its smallest by
  ``(rank, identifier)``.
- A cluster is **known** when it holds an identifier of a unique type (it has, say, a user id), as
  in :class:`core.plugin_api.IdentifierType`. Anonymous history and email-only contacts are not
  known.

The replay
==========

Duplicates are dropped and the observations are replayed in **canonical order**: by
``event_key``, ties by the sorted tuple of identifiers. The result is therefore a function of the
*set* of observations. For each observation:

1. Each of its identifiers not seen before starts a new one-identifier cluster.
2. The clusters its identifiers are in are merged into one **group**, greedily and in a fixed
   order: the group starts as the cluster of the observation's strongest identifier; every other
   cluster is then offered to the group: first those the observation touches through a strong
   (not weak) identifier, then the others; within each, by the rank of the strongest identifier
   through which the observation touches it, then by anchor (older first). A cluster joins the
   group unless one of these rules refuses it:

   (a) **unique types conflict**: for some unique type the group and the cluster hold different
       values. A profile never holds two user ids.
   (b) **weak link between known clusters**: both are known, and the observation touches the
       cluster, or a known cluster already in the group, only through weak identifiers. Put
       differently: the known clusters one observation puts together must all be touched through
       a strong identifier, unless there is only one of them. A shared anonymous id or device
       token alone therefore never merges two known customers (a family computer, a shop's
       tablet), while it does attach unknown clusters (anonymous history, an email-only contact)
       to one known customer. As strongly touched clusters are offered first, the group prefers
       them to weakly touched ones. With the core types ``user_id`` is the only unique type, so
       (a) already keeps known clusters apart; (b) matters once a tenant has a second unique
       type (a loyalty number, say).
   (c) **blocked**: the group and the cluster would hold the two identifiers of a pair in
       ``blocked`` (pairs an admin separated). Blocked pairs never end in one cluster.

   A refused cluster keeps to itself (a refused new identifier stays alone in its new cluster);
   each refusal is recorded as a :class:`Refusal`. Clusters only ever gain unique values,
   known-ness and blocked partners, so an observation replayed again refuses the same clusters.
3. The observation is **assigned** to the cluster that holds its strongest identifier at the end
   of the replay.

A **merge** (:class:`Merge`) is recorded when a joining cluster and the group both held
identifiers seen before this observation: two existing profiles become one, the one with the later
anchor absorbed into the one with the earlier anchor. New identifiers joining a cluster (a login
adding a first user id to anonymous history) are not merges: no profile disappears.

Guarantees (tested in ``tests/identity/test_graph.py``)
========================================================

- **Order independence and idempotence**: any permutation of the observations, with any number
  of duplicates, gives an equal :class:`Resolution`.
- **No cluster holds two values of a unique type**, nor both identifiers of a blocked pair.
- **Locality**: the *raw component* of an identifier is everything reachable from it through
  observations sharing identifiers, ignoring all rules (:func:`affected_component`). Clusters
  never cross raw components, and every step above only looks at the clusters of the
  observation's own identifiers, so replaying one raw component alone gives exactly the clusters,
  anchors, assignments, merges and refusals that replaying everything gives for it. A new event,
  or a changed blocked pair, therefore only needs its raw component replayed.
- **History, not arrival, decides**: an event that arrives late but carries an early timestamp is
  replayed in its place and can change what later events did: an identifier may end in a
  different cluster than before it arrived, not only in a bigger one. A profile store applying
  these results must handle reassignments, not merges alone.

Cost: one sort, then union-find with union by size and path compression over integer node ids:
near-linear in the number of (observation, identifier) pairs.
"""

from __future__ import annotations

import itertools
import operator
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from core.plugin_api import IdentifierType

Identifier = tuple[str, str]
"""``(type key, normalized value)``."""
ClusterId = Identifier
"""A cluster is named by its anchor identifier."""
EventKey = tuple[Any, ...]
"""``(timestamp, message_id)``, or any tuples mutually comparable within one resolution."""
RefusalReason = Literal["unique_conflict", "weak_link", "blocked"]

UNIQUE_RANK, STRONG_RANK, WEAK_RANK = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Observation:
    """One event's identifiers, which it says belong to one person, and the key ordering it."""

    event_key: EventKey
    identifiers: frozenset[Identifier]

    def __post_init__(self) -> None:
        if not isinstance(self.identifiers, frozenset):
            object.__setattr__(self, "identifiers", frozenset(self.identifiers))
        if not self.identifiers:
            raise ValueError(f"observation {self.event_key!r} carries no identifier")


@dataclass(frozen=True)
class Rules:
    """Which identifier types are unique per profile, and which are weak (do not merge known ones).

    Types listed in neither are strong and not unique: they merge clusters freely, within rules
    (a) and (c).
    """

    unique_types: frozenset[str] = frozenset()
    weak_types: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "unique_types", frozenset(self.unique_types))
        object.__setattr__(self, "weak_types", frozenset(self.weak_types))

    @classmethod
    def from_types(cls, types: Mapping[str, IdentifierType]) -> Rules:
        """The rules the registered identifier types declare, keyed as in ``types``."""
        return cls(
            unique_types=frozenset(key for key, kind in types.items() if kind.unique_per_profile),
            weak_types=frozenset(key for key, kind in types.items() if not kind.merges_known_profiles),
        )

    def rank(self, type_key: str) -> int:
        """0 for a unique type, 1 for a strong one, 2 for a weak one: lower is stronger."""
        if type_key in self.unique_types:
            return UNIQUE_RANK
        return WEAK_RANK if type_key in self.weak_types else STRONG_RANK


@dataclass(frozen=True)
class Merge:
    """Two existing clusters became one while replaying the observation ``event_key``.

    ``cause_identifiers`` are the observation's identifiers that lay in the two clusters.
    """

    event_key: EventKey
    absorbed_cluster_anchor: Identifier
    surviving_cluster_anchor: Identifier
    cause_identifiers: frozenset[Identifier]


@dataclass(frozen=True)
class Refusal:
    """The observation ``event_key`` linked two clusters that a rule kept apart.

    ``cluster_anchor`` is the group being built around the observation's strongest identifier,
    ``other_cluster_anchor`` the cluster it refused; anchors as they were at that moment.
    """

    event_key: EventKey
    cluster_anchor: Identifier
    other_cluster_anchor: Identifier
    reason: RefusalReason
    cause_identifiers: frozenset[Identifier]


@dataclass(frozen=True)
class Resolution:
    """The outcome of :func:`resolve`.

    ``cluster_of`` maps every identifier to its cluster id (the cluster's anchor); ``clusters``
    maps each cluster id to its identifiers; ``assignment`` maps each observation to its cluster
    id and ``observations`` lists each cluster's observations in canonical order (clusters without
    observations of their own are absent); ``merges`` and ``refusals`` are in replay order.
    """

    cluster_of: Mapping[Identifier, ClusterId]
    clusters: Mapping[ClusterId, frozenset[Identifier]]
    assignment: Mapping[Observation, ClusterId]
    observations: Mapping[ClusterId, tuple[Observation, ...]]
    merges: tuple[Merge, ...] = ()
    refusals: tuple[Refusal, ...] = ()


def canonical_order(observations: Iterable[Observation]) -> list[Observation]:
    """The distinct observations sorted by ``event_key``, ties by their sorted identifiers."""
    ordered = sorted(set(observations), key=operator.attrgetter("event_key"))
    keys = [observation.event_key for observation in ordered]
    tied = itertools.compress(range(1, len(keys)), map(operator.eq, keys, itertools.islice(keys, 1, None)))
    start = end = -1
    for position in tied:  # sort each (rare) run of equal event keys by the observations' identifiers
        if position != end + 1:
            _sort_run(ordered, start, end)
            start = position - 1
        end = position
    _sort_run(ordered, start, end)
    return ordered


def _sort_run(ordered: list[Observation], start: int, end: int) -> None:
    if start >= 0:
        ordered[start : end + 1] = sorted(ordered[start : end + 1], key=lambda obs: sorted(obs.identifiers))


def resolve(
    observations: Iterable[Observation],
    rules: Rules,
    blocked: frozenset[frozenset[Identifier]] = frozenset(),
) -> Resolution:
    """Replay ``observations`` in canonical order under ``rules``; see the module docstring.

    ``blocked`` holds pairs of identifiers that must never share a cluster.
    """
    ordered = canonical_order(observations)
    replay = _Replay(rules, blocked)
    assigned = [replay.observe(observation) for observation in ordered]
    return replay.result(ordered, assigned)


def affected_component(
    observations: Iterable[Observation], start_identifiers: Iterable[Identifier]
) -> list[Observation]:
    """The raw component of ``start_identifiers``: the observations reachable from them.

    Two observations are connected when they share an identifier; rules and blocked pairs are
    ignored. Returned distinct, in canonical order. By the locality property,
    ``resolve(affected_component(all, ids), ...)`` gives the clusters of ``ids`` exactly as
    ``resolve(all, ...)`` does.
    """
    distinct = list(set(observations))
    holding: defaultdict[Identifier, list[int]] = defaultdict(list)
    for position, observation in enumerate(distinct):
        for identifier in observation.identifiers:
            holding[identifier].append(position)
    reached: set[int] = set()
    seen: set[Identifier] = set()
    frontier = [identifier for identifier in start_identifiers if identifier in holding]
    seen.update(frontier)
    while frontier:
        for position in holding[frontier.pop()]:
            if position in reached:
                continue
            reached.add(position)
            for other in distinct[position].identifiers:
                if other not in seen:
                    seen.add(other)
                    frontier.append(other)
    return canonical_order(distinct[position] for position in reached)


# --- the replay machinery ----------------------------------------------------------------------
@dataclass(slots=True)
class _Touch:
    """How the observation being replayed touches one cluster (or the group built so far)."""

    rank: int  # the best rank among the observation's identifiers in it
    # For one cluster: whether one of those identifiers is of a type that is not weak.
    # For the group: whether every known cluster in it is touched strongly (true while none is).
    strong: bool
    existed: bool  # whether one of them was seen before this observation
    handles: list[Identifier]  # the observation's identifiers in it


class _Replay:
    """Union-find over identifiers, with per-cluster facts kept at each root.

    Nodes are integers in first-seen order. For a root: ``size``, ``anchor`` (a node),
    ``unique`` (unique type -> value, or None when the cluster is not known), ``partners`` (the
    identifiers blocked against one of its members, or None).
    """

    def __init__(self, rules: Rules, blocked: frozenset[frozenset[Identifier]]):
        self.rules = rules
        self.rank_of: dict[str, int] = {}
        self.weak_types = rules.weak_types
        self.partners_of: defaultdict[Identifier, set[Identifier]] = defaultdict(set)
        for pair in blocked:
            if len(pair) != 2:
                raise ValueError(f"a blocked pair holds two different identifiers, not {sorted(pair)!r}")
            first, second = pair
            self.partners_of[first].add(second)
            self.partners_of[second].add(first)
        self.node_of: dict[Identifier, int] = {}
        self.identifier: list[Identifier] = []
        self.first_seen: list[EventKey] = []
        self.parent: list[int] = []
        self.size: list[int] = []
        self.anchor: list[int] = []
        self.unique: list[dict[str, str] | None] = []
        self.partners: list[set[Identifier] | None] = []
        self.merges: list[Merge] = []
        self.refusals: list[Refusal] = []

    # -- union-find --
    def find(self, node: int) -> int:
        parent = self.parent
        root = node
        while parent[root] != root:
            root = parent[root]
        while parent[node] != root:  # path compression
            parent[node], node = root, parent[node]
        return root

    def add(self, identifier: Identifier, event_key: EventKey) -> int:
        node = len(self.identifier)
        self.node_of[identifier] = node
        self.identifier.append(identifier)
        self.first_seen.append(event_key)
        self.parent.append(node)
        self.size.append(1)
        self.anchor.append(node)
        type_key, value = identifier
        self.unique.append({type_key: value} if type_key in self.rules.unique_types else None)
        partners = self.partners_of.get(identifier)
        self.partners.append(set(partners) if partners else None)
        return node

    def anchor_key(self, root: int) -> tuple[EventKey, Identifier]:
        anchor = self.anchor[root]
        return self.first_seen[anchor], self.identifier[anchor]

    def rank(self, type_key: str) -> int:
        rank = self.rank_of.get(type_key)
        if rank is None:
            rank = self.rank_of[type_key] = self.rules.rank(type_key)
        return rank

    # -- one observation --
    def observe(self, observation: Observation) -> int:
        """Apply one observation; returns a node whose final cluster the observation belongs to."""
        node_of, find = self.node_of, self.find
        if len(observation.identifiers) == 1:  # the most common event: one anonymous id, say
            (identifier,) = observation.identifiers
            node = node_of.get(identifier)
            return self.add(identifier, observation.event_key) if node is None else node
        seen: list[tuple[Identifier, int]] = []
        new: list[Identifier] = []
        for identifier in observation.identifiers:
            node = node_of.get(identifier)
            if node is None:
                new.append(identifier)
            else:
                seen.append((identifier, find(node)))
        if not new:  # the common case: everything already sits in one cluster
            first_root = seen[0][1]
            if all(root == first_root for _, root in seen):
                return first_root
        event_key = observation.event_key
        touches: dict[int, _Touch] = {}
        for identifier, root in seen:
            self._touch(touches, root, identifier, existed=True)
        for identifier in sorted(new):
            self._touch(touches, self.add(identifier, event_key), identifier, existed=False)
        strongest = min(observation.identifiers, key=lambda ident: (self.rank(ident[0]), ident))
        group = find(node_of[strongest])
        group_touch = touches.pop(group)
        group_touch.strong = group_touch.strong or self.unique[group] is None
        offered = sorted(
            touches, key=lambda root: (not touches[root].strong, touches[root].rank, self.anchor_key(root))
        )
        for root in offered:
            group = self._offer(event_key, group, group_touch, root, touches[root])
        return node_of[strongest]

    def _touch(self, touches: dict[int, _Touch], root: int, identifier: Identifier, existed: bool) -> None:
        type_key = identifier[0]
        rank, strong = self.rank(type_key), type_key not in self.weak_types
        touch = touches.get(root)
        if touch is None:
            touches[root] = _Touch(rank, strong, existed, [identifier])
        else:
            touch.rank, touch.strong = min(touch.rank, rank), touch.strong or strong
            touch.existed = touch.existed or existed
            touch.handles.append(identifier)

    def _offer(self, event_key: EventKey, group: int, group_touch: _Touch, root: int, touch: _Touch) -> int:
        """Merge cluster ``root`` into ``group`` unless a rule refuses; returns the group's root."""
        reason = self._refusal(group, group_touch, root, touch)
        if reason is not None:
            anchors = self.identifier[self.anchor[group]], self.identifier[self.anchor[root]]
            cause = frozenset(group_touch.handles + touch.handles)
            self.refusals.append(Refusal(event_key, *anchors, reason, cause))
            return group
        if group_touch.existed and touch.existed:
            earlier, later = sorted((group, root), key=self.anchor_key)
            anchors = self.identifier[self.anchor[later]], self.identifier[self.anchor[earlier]]
            cause = frozenset(group_touch.handles + touch.handles)
            self.merges.append(Merge(event_key, *anchors, cause))
        group_touch.rank = min(group_touch.rank, touch.rank)
        if self.unique[root] is not None:  # a known cluster joins: it must be touched strongly too
            group_touch.strong = group_touch.strong and touch.strong
        group_touch.existed = group_touch.existed or touch.existed
        group_touch.handles.extend(touch.handles)
        return self._union(group, root)

    def _refusal(self, group: int, group_touch: _Touch, root: int, touch: _Touch) -> RefusalReason | None:
        group_unique, unique = self.unique[group], self.unique[root]
        if group_unique is not None and unique is not None:
            for type_key, value in unique.items():
                if group_unique.get(type_key, value) != value:
                    return "unique_conflict"
            if not (group_touch.strong and touch.strong):
                return "weak_link"
        group_partners, partners = self.partners[group], self.partners[root]
        if group_partners and partners:
            # a pair (x in group, y in root) puts x among root's partners: look for one in group
            for partner in partners:
                node = self.node_of.get(partner)
                if node is not None and self.find(node) == group:
                    return "blocked"
        return None

    def _union(self, first: int, second: int) -> int:
        if self.size[first] < self.size[second]:
            first, second = second, first
        self.parent[second] = first
        self.size[first] += self.size[second]
        if self.anchor_key(second) < self.anchor_key(first):
            self.anchor[first] = self.anchor[second]
        unique = self.unique[second]
        if unique is not None:
            kept = self.unique[first]
            if kept is None:
                self.unique[first] = unique
            else:
                kept.update(unique)
        partners = self.partners[second]
        if partners is not None:
            kept_partners = self.partners[first]
            if kept_partners is None:
                self.partners[first] = partners
            else:
                kept_partners.update(partners)
        self.unique[second] = self.partners[second] = None
        return first

    # -- the answer --
    def result(self, ordered: list[Observation], assigned: list[int]) -> Resolution:
        find, identifier, anchor = self.find, self.identifier, self.anchor
        cluster_of: dict[Identifier, ClusterId] = {}
        members: defaultdict[ClusterId, list[Identifier]] = defaultdict(list)
        for node, ident in enumerate(identifier):
            cluster = identifier[anchor[find(node)]]
            cluster_of[ident] = cluster
            members[cluster].append(ident)
        assignment: dict[Observation, ClusterId] = {}
        by_cluster: defaultdict[ClusterId, list[Observation]] = defaultdict(list)
        for observation, node in zip(ordered, assigned, strict=True):
            cluster = identifier[anchor[find(node)]]
            assignment[observation] = cluster
            by_cluster[cluster].append(observation)
        return Resolution(
            cluster_of=cluster_of,
            clusters={cluster: frozenset(idents) for cluster, idents in members.items()},
            assignment=assignment,
            observations={cluster: tuple(observations) for cluster, observations in by_cluster.items()},
            merges=tuple(self.merges),
            refusals=tuple(self.refusals),
        )
