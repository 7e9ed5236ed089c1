"""RFM scores and segments: a few named customers, then properties over random populations."""

from __future__ import annotations

from random import Random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.traits.rfm import (
    SEGMENT_GRID,
    RfmSegment,
    quintile_scores,
    rfm_scores,
    rfm_segment,
    rfm_segments,
    score_against,
    score_cuts,
)

# Small whole numbers make ties common, which is where scoring goes wrong.
values = st.lists(st.integers(min_value=0, max_value=12).map(float), min_size=1, max_size=60)
any_values = st.lists(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False), min_size=1, max_size=60)


# --- segments -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("recency", "frequency", "segment"),
    [
        (5, 5, RfmSegment.CHAMPIONS),
        (4, 5, RfmSegment.LOYAL_CUSTOMERS),
        (3, 4, RfmSegment.LOYAL_CUSTOMERS),
        (5, 2, RfmSegment.POTENTIAL_LOYALISTS),
        (5, 1, RfmSegment.NEW_CUSTOMERS),
        (4, 1, RfmSegment.PROMISING),
        (3, 3, RfmSegment.NEED_ATTENTION),
        (3, 1, RfmSegment.ABOUT_TO_SLEEP),
        (2, 3, RfmSegment.AT_RISK),
        (1, 5, RfmSegment.CANNOT_LOSE_THEM),
        (1, 1, RfmSegment.HIBERNATING),
    ],
)
def test_named_segments(recency: int, frequency: int, segment: RfmSegment) -> None:
    assert rfm_segment(recency, frequency) is segment


def test_the_grid_names_every_cell_and_uses_every_segment() -> None:
    assert len(SEGMENT_GRID) == 5 and all(len(row) == 5 for row in SEGMENT_GRID)
    assert {segment for row in SEGMENT_GRID for segment in row} == set(RfmSegment)
    with pytest.raises(ValueError):
        rfm_segment(0, 3)
    with pytest.raises(ValueError):
        rfm_segment(3, 6)


def test_a_small_shop_end_to_end() -> None:
    # Ten customers: days since their last purchase, their number of purchases, their total spend.
    days_since = [2, 3, 5, 8, 13, 40, 60, 90, 200, 365]
    purchases = [12, 1, 9, 4, 6, 2, 11, 1, 10, 1]
    spend = [900.0, 30.0, 500.0, 120.0, 300.0, 50.0, 700.0, 20.0, 800.0, 15.0]
    scores = rfm_scores(days_since, purchases, spend)
    assert scores.recency.tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    # Three customers tie at one purchase: nobody buys less, so all three score 1.
    assert scores.frequency.tolist() == [5, 1, 4, 3, 3, 2, 5, 1, 4, 1]
    assert scores.monetary.tolist() == [5, 2, 4, 3, 3, 2, 4, 1, 5, 1]
    assert rfm_segments(scores) == [
        RfmSegment.CHAMPIONS,
        RfmSegment.NEW_CUSTOMERS,
        RfmSegment.LOYAL_CUSTOMERS,
        RfmSegment.POTENTIAL_LOYALISTS,
        RfmSegment.NEED_ATTENTION,
        RfmSegment.ABOUT_TO_SLEEP,
        RfmSegment.CANNOT_LOSE_THEM,
        RfmSegment.HIBERNATING,
        RfmSegment.AT_RISK,
        RfmSegment.HIBERNATING,
    ]


def test_scores_are_quintiles_and_ties_take_their_lowest_score() -> None:
    assert quintile_scores([10.0, 20.0, 30.0, 40.0, 50.0]).tolist() == [1, 2, 3, 4, 5]
    assert quintile_scores(np.arange(10.0)).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert quintile_scores([7.0] * 6).tolist() == [1] * 6  # nobody is better than anybody
    # Eight one-time buyers: each is better than nobody; the other two beat 80 % and 90 %.
    assert quintile_scores([1.0] * 8 + [2.0, 3.0]).tolist() == [1] * 8 + [5, 5]
    # A tie at the top: a third of the customers beat two thirds, not 80 %: no 5.
    top_tie = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 9.0, 9.0, 9.0]
    assert quintile_scores(top_tie).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 4]
    assert quintile_scores([]).tolist() == []
    with pytest.raises(ValueError):
        quintile_scores([1.0, float("nan")])


def test_mismatched_lengths_are_rejected() -> None:
    with pytest.raises(ValueError):
        rfm_scores([1, 2, 3], [1, 2], [1.0, 2.0, 3.0])


# --- properties ---------------------------------------------------------------------------------
@given(any_values, st.booleans())
def test_scores_run_from_1_to_5(population: list[float], higher_is_better: bool) -> None:
    scores = quintile_scores(population, higher_is_better=higher_is_better)
    assert len(scores) == len(population)
    assert all(1 <= score <= 5 for score in scores)


@given(values, st.randoms(use_true_random=False))
def test_scores_do_not_depend_on_the_order_of_customers(population: list[float], random: Random) -> None:
    order = list(range(len(population)))
    random.shuffle(order)
    scores = quintile_scores(population)
    shuffled = quintile_scores([population[position] for position in order])
    assert shuffled.tolist() == [scores[position] for position in order]


@given(values, st.booleans())
def test_better_never_scores_lower_and_equal_scores_equal(
    population: list[float], higher_is_better: bool
) -> None:
    scores = quintile_scores(population, higher_is_better=higher_is_better)
    sign = 1 if higher_is_better else -1
    for value, score in zip(population, scores, strict=True):
        for other, other_score in zip(population, scores, strict=True):
            if sign * value > sign * other:
                assert score >= other_score
            elif value == other:
                assert score == other_score


@given(st.sets(st.integers(min_value=-1000, max_value=1000), min_size=5, max_size=80))
def test_distinct_values_fill_five_groups_of_near_equal_size(population: set[int]) -> None:
    scores = quintile_scores(sorted(population))
    sizes = np.bincount(scores, minlength=6)[1:]
    assert sizes.max() - sizes.min() <= 1


customers = st.lists(
    st.tuples(st.integers(0, 400), st.integers(1, 30), st.integers(1, 999)), min_size=1, max_size=60
)


@given(customers)
def test_rfm_recency_rewards_the_most_recent(customers: list[tuple[int, int, int]]) -> None:
    days_since = [days for days, _, _ in customers]
    scores = rfm_scores(days_since, [count for _, count, _ in customers], [spend for *_, spend in customers])
    for days, score in zip(days_since, scores.recency, strict=True):
        for other_days, other_score in zip(days_since, scores.recency, strict=True):
            if days < other_days:  # bought more recently
                assert score >= other_score
    assert len(rfm_segments(scores)) == len(customers)


@given(st.lists(st.integers(0, 40), min_size=1, max_size=60), st.booleans())
def test_cuts_score_every_member_as_the_population_does(values: list[int], higher_is_better: bool) -> None:
    cuts = score_cuts(values, higher_is_better=higher_is_better)
    expected = quintile_scores(values, higher_is_better=higher_is_better)
    assert [score_against(v, cuts, higher_is_better=higher_is_better) for v in values] == list(expected)
