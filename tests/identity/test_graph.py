"""Identity resolution rules: readable stories first, then properties over random histories."""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.identity.graph import (
    Identifier,
    Merge,
    Observation,
    Refusal,
    Resolution,
    Rules,
    affected_component,
    canonical_order,
    resolve,
)
from core.identity.identifiers import CORE_IDENTIFIER_TYPES
from core.plugin_api import IdentifierType

CORE = Rules.from_types(CORE_IDENTIFIER_TYPES)
# A tenant with two plugin types: a loyalty number (one per profile) and a push device token (weak).
EXTENDED = Rules.from_types(
    {
        **CORE_IDENTIFIER_TYPES,
        "loyalty": IdentifierType("loyalty", "Loyalty number", unique_per_profile=True),
        "device": IdentifierType("device", "Push token", merges_known_profiles=False),
    }
)


def user(value: str) -> Identifier:
    return ("user_id", value)


def email(value: str) -> Identifier:
    return ("email", f"{value}@example.com")


def phone(value: str) -> Identifier:
    return ("phone", value)


def anon(value: str) -> Identifier:
    return ("anonymous_id", value)


def loyalty(value: str) -> Identifier:
    return ("loyalty", value)


def device(value: str) -> Identifier:
    return ("device", value)


def seen(at: int, *identifiers: Identifier, message: str = "") -> Observation:
    """An event at time ``at`` carrying ``identifiers``."""
    return Observation((at, message or f"msg-{at}"), frozenset(identifiers))


def together(resolution: Resolution, *identifiers: Identifier) -> bool:
    return len({resolution.cluster_of[identifier] for identifier in identifiers}) == 1


# --- stories -------------------------------------------------------------------------------------
def test_an_anonymous_visitor_who_logs_in_keeps_their_history() -> None:
    history = [seen(1, anon("a")), seen(2, anon("a")), seen(3, anon("a"), user("u1")), seen(4, user("u1"))]
    result = resolve(history, CORE)
    assert result.clusters == {anon("a"): frozenset({anon("a"), user("u1")})}
    assert set(result.assignment.values()) == {anon("a")}  # the anchor is the earliest identifier
    assert result.observations[anon("a")] == tuple(history)
    assert result.merges == ()  # a first user id joining anonymous history removes no profile


def test_logging_in_on_a_new_device_merges_that_device_into_the_customer() -> None:
    history = [
        seen(1, user("u1"), email("ann")),
        seen(2, anon("phone-browser")),
        seen(3, anon("phone-browser")),
        seen(4, anon("phone-browser"), user("u1")),
    ]
    result = resolve(history, CORE)
    assert together(result, user("u1"), email("ann"), anon("phone-browser"))
    # Both profiles existed: the later one (first seen at 2) is absorbed into the earlier one.
    assert result.merges == (
        Merge(
            (4, "msg-4"), anon("phone-browser"), email("ann"), frozenset({anon("phone-browser"), user("u1")})
        ),
    )
    assert len(result.observations[email("ann")]) == 4


def test_two_user_ids_never_share_a_cluster_even_through_a_shared_email() -> None:
    history = [seen(1, user("u1"), email("family")), seen(2, user("u2"), email("family"))]
    result = resolve(history, CORE)
    assert result.clusters == {
        email("family"): frozenset({email("family"), user("u1")}),
        user("u2"): frozenset({user("u2")}),
    }
    assert result.assignment[history[1]] == user("u2")  # the event was u2's: it stays with u2
    (refusal,) = result.refusals
    assert refusal.reason == "unique_conflict"


def test_an_event_with_two_user_ids_links_the_rest_to_the_first_by_sorted_order() -> None:
    event = seen(1, user("u2"), user("u1"), email("x"))
    result = resolve([event], CORE)
    assert result.clusters == {
        email("x"): frozenset({email("x"), user("u1")}),
        user("u2"): frozenset({user("u2")}),
    }
    assert result.assignment[event] == email("x")  # the cluster of its strongest identifier, u1


def test_a_shared_anonymous_id_attaches_anonymous_history_to_one_customer_only() -> None:
    history = [
        seen(1, anon("family-pc")),  # browsing before anyone logs in
        seen(2, anon("family-pc"), user("mum")),
        seen(3, anon("family-pc"), user("dad")),
        seen(4, anon("family-pc")),
    ]
    result = resolve(history, CORE)
    assert result.clusters == {
        anon("family-pc"): frozenset({anon("family-pc"), user("mum")}),
        user("dad"): frozenset({user("dad")}),
    }
    assert [result.assignment[event] for event in history] == [anon("family-pc")] * 2 + [user("dad")] + [
        anon("family-pc")
    ]


def test_a_shared_weak_identifier_alone_never_merges_two_known_customers() -> None:
    # Known through different unique types, so no unique conflict: rule (b) alone keeps them apart.
    shared_tablet = [
        seen(1, user("u1"), device("shop-tablet")),
        seen(2, loyalty("L7"), device("shop-tablet")),
    ]
    result = resolve(shared_tablet, EXTENDED)
    assert not together(result, user("u1"), loyalty("L7"))
    assert together(result, user("u1"), device("shop-tablet"))  # the earlier customer keeps it
    assert [refusal.reason for refusal in result.refusals] == ["weak_link"]
    # The same with the core anonymous id:
    anonymous = [seen(1, user("u1"), anon("a")), seen(2, loyalty("L7"), anon("a"))]
    assert not together(resolve(anonymous, EXTENDED), user("u1"), loyalty("L7"))


def test_known_clusters_merged_by_one_event_must_all_be_touched_strongly() -> None:
    # A wristband id is unique per profile but weak: a wristband passes from hand to hand.
    rules = Rules(unique_types=frozenset({"wristband", "user_id"}), weak_types=frozenset({"wristband"}))
    history = [
        seen(1, ("wristband", "w1")),
        seen(2, email("ann")),  # an email-only contact: not known
        seen(3, user("u2"), email("bob")),
        seen(4, ("wristband", "w1"), email("ann"), email("bob")),
    ]
    result = resolve(history, rules)
    assert together(result, ("wristband", "w1"), email("ann"))  # an unknown contact attaches
    # Bob's profile is linked to the wristband's only through the weak wristband id: kept apart,
    # even though Ann's email (strong) joined the wristband's cluster first.
    assert not together(result, ("wristband", "w1"), user("u2"))
    assert [refusal.reason for refusal in result.refusals] == ["weak_link"]


def test_a_strong_identifier_does_merge_two_known_customers() -> None:
    history = [seen(1, user("u1"), email("ann")), seen(2, loyalty("L7"), email("ann"))]
    result = resolve(history, EXTENDED)
    assert together(result, user("u1"), loyalty("L7"), email("ann"))
    assert result.merges == ()  # L7 was new: it joined, nothing was absorbed


def test_a_weak_identifier_attaches_an_unknown_contact_to_a_known_customer() -> None:
    history = [
        seen(1, email("newsletter")),
        seen(2, device("d1"), email("newsletter")),
        seen(3, device("d1"), user("u1")),
    ]
    result = resolve(history, EXTENDED)
    assert together(result, email("newsletter"), device("d1"), user("u1"))


def test_merges_are_transitive_through_emails_and_phones() -> None:
    history = [
        seen(1, anon("a"), email("ann")),
        seen(2, anon("b"), phone("+33612345678")),
        seen(3, email("ann"), phone("+33612345678")),
        seen(4, phone("+33612345678"), user("u1")),
        seen(5, user("u1"), anon("c")),
    ]
    result = resolve(history, CORE)
    assert list(result.clusters) == [anon("a")]
    assert result.clusters[anon("a")] == {
        anon("a"),
        anon("b"),
        anon("c"),
        email("ann"),
        phone("+33612345678"),
        user("u1"),
    }
    assert [(merge.absorbed_cluster_anchor, merge.surviving_cluster_anchor) for merge in result.merges] == [
        (anon("b"), anon("a"))
    ]


def test_a_blocked_pair_is_never_in_one_cluster() -> None:
    # An admin separated a mistyped email from the customer it was wrongly attached to.
    blocked = frozenset({frozenset({user("u1"), email("typo")})})
    history = [
        seen(1, user("u1"), email("typo")),
        seen(2, user("u1"), anon("a")),
        seen(3, email("typo"), anon("b")),
    ]
    result = resolve(history, CORE, blocked)
    assert result.clusters == {
        email("typo"): frozenset({email("typo"), anon("b")}),
        user("u1"): frozenset({user("u1"), anon("a")}),
    }
    assert [refusal.reason for refusal in result.refusals] == ["blocked"]


def test_a_blocked_pair_also_stops_indirect_links() -> None:
    blocked = frozenset({frozenset({anon("a"), user("u1")})})
    history = [seen(1, anon("a"), email("ann")), seen(2, email("ann"), user("u1"))]
    result = resolve(history, CORE, blocked)
    assert together(result, anon("a"), email("ann"))
    assert not together(result, anon("a"), user("u1"))


def test_the_order_of_arrival_does_not_matter() -> None:
    history = [
        seen(1, anon("a")),
        seen(2, anon("a"), email("ann")),
        seen(3, user("u1"), anon("b")),
        seen(4, email("ann"), anon("b")),
        seen(5, user("u2"), email("ann")),
    ]
    expected = resolve(history, CORE)
    assert resolve(reversed(history), CORE) == expected
    assert resolve(history[2:] + history[:2] + history[1:3], CORE) == expected


def test_a_late_event_is_replayed_in_its_place_and_can_move_an_identifier() -> None:
    on_time = [seen(2, user("u1"), email("shared"))]
    before = resolve(on_time, CORE)
    assert together(before, user("u1"), email("shared"))
    late = seen(1, user("u2"), email("shared"))  # happened first, arrived last
    after = resolve([*on_time, late], CORE)
    assert together(after, user("u2"), email("shared"))
    assert not together(after, user("u1"), email("shared"))


def test_cluster_ids_are_the_earliest_identifier() -> None:
    history = [
        seen(5, user("u1")),
        seen(7, user("u1"), email("b"), email("a")),
        seen(3, phone("+1"), email("b")),
    ]
    result = resolve(history, CORE)
    # Seen first at 3: phone +1 and email b; the smaller identifier wins the tie.
    assert list(result.clusters) == [email("b")]


def test_repeating_observations_changes_nothing() -> None:
    history = [seen(1, anon("a")), seen(2, anon("a"), user("u1")), seen(3, anon("a"), user("u2"))]
    assert resolve(history * 3, CORE) == resolve(history, CORE)


def test_resolving_one_raw_component_alone_gives_its_part_of_the_whole() -> None:
    history = [
        seen(1, anon("a"), email("ann")),
        seen(2, email("ann"), user("u1")),
        seen(3, anon("z"), user("u9")),  # someone else entirely
        seen(4, anon("a"), user("u2")),
    ]
    component = affected_component(history, [user("u1")])
    assert component == [history[0], history[1], history[3]]
    alone, everything = resolve(component, CORE), resolve(history, CORE)
    assert alone.cluster_of == {ident: everything.cluster_of[ident] for ident in alone.cluster_of}
    assert alone.refusals == everything.refusals


def test_rules_come_from_the_identifier_types() -> None:
    assert CORE == Rules(
        unique_types=frozenset({"user_id"}), weak_types=frozenset({"anonymous_id", "pass_serial"})
    )
    assert (CORE.rank("user_id"), CORE.rank("email"), CORE.rank("anonymous_id"), CORE.rank("unheard_of")) == (
        0,
        1,
        2,
        1,
    )


def test_malformed_input_is_refused() -> None:
    with pytest.raises(ValueError, match="carries no identifier"):
        Observation((1, "m"), frozenset())
    with pytest.raises(ValueError, match="two different identifiers"):
        resolve([seen(1, user("u1"))], CORE, frozenset({frozenset({user("u1")})}))


def test_canonical_order_breaks_event_key_ties_by_identifiers() -> None:
    first, second = seen(1, email("b"), message="same"), seen(1, email("a"), message="same")
    assert canonical_order([first, second, first]) == [second, first]


# --- properties ------------------------------------------------------------------------------------
POOL: list[Identifier] = [
    *(user(f"u{n}") for n in range(3)),
    *(loyalty(f"L{n}") for n in range(2)),
    *(email(f"e{n}") for n in range(4)),
    *(phone(f"+1{n}") for n in range(2)),
    *(anon(f"a{n}") for n in range(4)),
    *(device(f"d{n}") for n in range(2)),
]
observations_st = st.lists(
    st.builds(
        Observation,
        # Few distinct keys, so that different observations share an event key now and then.
        event_key=st.tuples(st.integers(0, 15), st.sampled_from(["m", "n"])),
        identifiers=st.frozensets(st.sampled_from(POOL), min_size=1, max_size=4),
    ),
    max_size=30,
)
blocked_st = st.frozensets(st.frozensets(st.sampled_from(POOL), min_size=2, max_size=2), max_size=3)


def raw_components(observations: Iterable[Observation]) -> list[set[Identifier]]:
    """Connected components of identifiers linked by observations, by a simple flood fill."""
    neighbours: dict[Identifier, set[Identifier]] = {}
    for observation in observations:
        for identifier in observation.identifiers:
            neighbours.setdefault(identifier, set()).update(observation.identifiers)
    components, done = [], set()
    for start in neighbours:
        if start in done:
            continue
        component, frontier = {start}, [start]
        while frontier:
            for other in neighbours[frontier.pop()] - component:
                component.add(other)
                frontier.append(other)
        done |= component
        components.append(component)
    return components


@given(observations_st, blocked_st, st.randoms(use_true_random=False), st.data())
def test_any_order_with_any_duplicates_gives_the_same_resolution(
    observations: list[Observation],
    blocked: frozenset[frozenset[Identifier]],
    rng: random.Random,
    data: st.DataObject,
) -> None:
    duplicates = data.draw(st.lists(st.sampled_from(observations), max_size=10)) if observations else []
    shuffled = observations + duplicates
    rng.shuffle(shuffled)
    assert resolve(shuffled, EXTENDED, blocked) == resolve(observations, EXTENDED, blocked)


@given(observations_st, blocked_st)
def test_invariants_hold_for_any_history(
    observations: list[Observation], blocked: frozenset[frozenset[Identifier]]
) -> None:
    result = resolve(observations, EXTENDED, blocked)
    mentioned = {identifier for observation in observations for identifier in observation.identifiers}
    # The clusters partition the identifiers seen, each named by one of its members.
    assert set(result.cluster_of) == mentioned
    assert sum(len(cluster) for cluster in result.clusters.values()) == len(mentioned)
    for anchor, cluster in result.clusters.items():
        assert anchor in cluster
        assert all(result.cluster_of[identifier] == anchor for identifier in cluster)
    # A profile holds at most one value of each unique type, and never both sides of a blocked pair.
    for cluster in result.clusters.values():
        for unique_type in EXTENDED.unique_types:
            assert len([identifier for identifier in cluster if identifier[0] == unique_type]) <= 1
    for pair in blocked:
        first, second = pair
        if first in mentioned and second in mentioned:
            assert result.cluster_of[first] != result.cluster_of[second]
    # Clusters never cross raw components.
    for component in raw_components(observations):
        for identifier in component:
            assert result.clusters[result.cluster_of[identifier]] <= component
    # The anchor is the earliest identifier by (first-seen event key, identifier).
    first_seen: dict[Identifier, tuple[object, ...]] = {}
    for observation in canonical_order(observations):
        for identifier in observation.identifiers:
            first_seen.setdefault(identifier, observation.event_key)
    for anchor, cluster in result.clusters.items():
        assert anchor == min(cluster, key=lambda identifier: (first_seen[identifier], identifier))
    # Each observation belongs to the cluster of its strongest identifier.
    for observation, cluster_id in result.assignment.items():
        strongest = min(observation.identifiers, key=lambda ident: (EXTENDED.rank(ident[0]), ident))
        assert result.cluster_of[strongest] == cluster_id
        assert observation in result.observations[cluster_id]
    assert set(result.assignment) == set(observations)


@given(observations_st, blocked_st, st.data())
def test_a_raw_component_resolved_alone_matches_the_whole(
    observations: list[Observation], blocked: frozenset[frozenset[Identifier]], data: st.DataObject
) -> None:
    everything = resolve(observations, EXTENDED, blocked)
    if not observations:
        return
    start = data.draw(st.sampled_from(sorted(everything.cluster_of)))
    component = affected_component(observations, [start])
    identifiers = {identifier for observation in component for identifier in observation.identifiers}
    # The component is closed: nothing outside it shares an identifier with it.
    assert all(
        observation in component or not (observation.identifiers & identifiers)
        for observation in observations
    )
    alone = resolve(component, EXTENDED, blocked)
    assert alone.cluster_of == {identifier: everything.cluster_of[identifier] for identifier in identifiers}
    assert alone.clusters == {anchor: everything.clusters[anchor] for anchor in alone.clusters}
    assert alone.assignment == {observation: everything.assignment[observation] for observation in component}
    assert list(alone.merges) == [
        merge for merge in everything.merges if merge.cause_identifiers <= identifiers
    ]
    assert list(alone.refusals) == [
        refusal for refusal in everything.refusals if refusal.cause_identifiers <= identifiers
    ]


@settings(max_examples=50)
@given(observations_st)
def test_without_rules_clusters_are_the_raw_components(observations: list[Observation]) -> None:
    result = resolve(observations, Rules())
    assert sorted(map(sorted, result.clusters.values())) == sorted(map(sorted, raw_components(observations)))
    assert result.refusals == ()


@given(observations_st, blocked_st)
def test_merges_and_refusals_cite_their_observation(
    observations: list[Observation], blocked: frozenset[frozenset[Identifier]]
) -> None:
    result = resolve(observations, EXTENDED, blocked)
    first_seen: dict[Identifier, tuple[object, ...]] = {}
    for observation in canonical_order(observations):
        for identifier in observation.identifiers:
            first_seen.setdefault(identifier, observation.event_key)
    records: list[Merge | Refusal] = [*result.merges, *result.refusals]
    for record in records:
        # The cause is part of one observation with that event key.
        assert any(
            record.event_key == observation.event_key and record.cause_identifiers <= observation.identifiers
            for observation in observations
        )
    for merge in result.merges:
        # Two clusters that existed before the observation: the older anchor survives.
        absorbed, surviving = merge.absorbed_cluster_anchor, merge.surviving_cluster_anchor
        assert (first_seen[surviving], surviving) < (first_seen[absorbed], absorbed)
        assert first_seen[absorbed] <= merge.event_key
        assert result.cluster_of[absorbed] == result.cluster_of[surviving]
    for refusal in result.refusals:
        assert refusal.reason in {"unique_conflict", "weak_link", "blocked"}
        assert refusal.cluster_anchor != refusal.other_cluster_anchor
