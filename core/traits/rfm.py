"""RFM: recency, frequency and monetary scores by quintile, and the segments marketers name.

Nothing here touches a database. Scores are relative to the customers scored together (one
tenant's), so the same customer can score differently in another population.

Scores
======

:func:`quintile_scores` gives each value a score from 1 to 5, 5 being the best, by the share of
the population strictly worse than it: ``score = 1 + floor(5 · below / n)`` with ``below`` values
worse than it among ``n``. A score of 5 thus reads "better than at least 80 % of customers", a
score of 1 "better than fewer than 20 %". Hence:

- equal values get equal scores, and the scores depend on the multiset of values only, not on
  their order; the computation is exact (integer arithmetic), so deterministic;
- a strictly better value never gets a lower score;
- distinct values fall into five groups of sizes as equal as ``n`` allows (quintiles);
- a tie takes the lowest score of the ranks it spans ("competition" or minimum ranking). This
  matters for frequency, where one-time buyers are often most customers: they all score 1, as
  the segment grid below expects of "bought once" (mid-ranks would give them 2 or more once they
  are 40 % of the customers, leaving "new customers" empty). The price: when more than a fifth of
  the customers tie at the top (bought on the last day, say), nobody scores 5; and a population
  where everyone is equal scores 1.

:func:`rfm_scores` applies this to the three measures, best meaning most recent (the *smallest*
time since the last purchase: RFM's recency is not the BG/NBD one), most frequent and highest
spend.

Segments
========

:func:`rfm_segment` names a customer from their recency and frequency scores with the 5 × 5 R × F
grid widely reproduced in open RFM tutorials and notebooks (often written as a ``seg_map`` of
regular expressions over the "RF" score string); it has no single peer-reviewed source. Every cell
has exactly one segment:

=====  ===================  ===================  ===================  ===================  ===================
R, F   F = 1                F = 2                F = 3                F = 4                F = 5
=====  ===================  ===================  ===================  ===================  ===================
5      new customers        potential loyalists  potential loyalists  champions            champions
4      promising            potential loyalists  potential loyalists  loyal customers      loyal customers
3      about to sleep       about to sleep       need attention       loyal customers      loyal customers
2      hibernating          hibernating          at risk              at risk              cannot lose them
1      hibernating          hibernating          at risk              at risk              cannot lose them
=====  ===================  ===================  ===================  ===================  ===================

The monetary score does not enter this grid. Variants put the mean of the F and M scores on the
F axis: pass that (rounded) as ``frequency_score`` for them. The grid has no "lost" segment: its
lowest cells are "hibernating". The CRAN ``rfm`` package (Hebbali) names segments from ranges over
all three scores instead, but its ranges overlap and leave gaps, so its segments depend on the
order rules are applied in and some customers get none.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


class RfmSegment(StrEnum):
    """A named RFM segment; the value is the stable key to store."""

    CHAMPIONS = "champions"
    LOYAL_CUSTOMERS = "loyal_customers"
    POTENTIAL_LOYALISTS = "potential_loyalists"
    NEW_CUSTOMERS = "new_customers"
    PROMISING = "promising"
    NEED_ATTENTION = "need_attention"
    ABOUT_TO_SLEEP = "about_to_sleep"
    AT_RISK = "at_risk"
    CANNOT_LOSE_THEM = "cannot_lose_them"
    HIBERNATING = "hibernating"


_S = RfmSegment
# SEGMENT_GRID[r - 1][f - 1]; rows by recency score 1..5, columns by frequency score 1..5.
SEGMENT_GRID: tuple[tuple[RfmSegment, ...], ...] = (
    (_S.HIBERNATING, _S.HIBERNATING, _S.AT_RISK, _S.AT_RISK, _S.CANNOT_LOSE_THEM),
    (_S.HIBERNATING, _S.HIBERNATING, _S.AT_RISK, _S.AT_RISK, _S.CANNOT_LOSE_THEM),
    (_S.ABOUT_TO_SLEEP, _S.ABOUT_TO_SLEEP, _S.NEED_ATTENTION, _S.LOYAL_CUSTOMERS, _S.LOYAL_CUSTOMERS),
    (_S.PROMISING, _S.POTENTIAL_LOYALISTS, _S.POTENTIAL_LOYALISTS, _S.LOYAL_CUSTOMERS, _S.LOYAL_CUSTOMERS),
    (_S.NEW_CUSTOMERS, _S.POTENTIAL_LOYALISTS, _S.POTENTIAL_LOYALISTS, _S.CHAMPIONS, _S.CHAMPIONS),
)
"""The R × F grid of the module docstring."""


@dataclass(frozen=True, eq=False)
class RfmScores:
    """Per-customer scores from 1 to 5, aligned with the inputs of :func:`rfm_scores`."""

    recency: IntArray
    frequency: IntArray
    monetary: IntArray


def quintile_scores(values: npt.ArrayLike, *, higher_is_better: bool = True) -> IntArray:
    """Each value's score from 1 to 5 (5 the best) by the share of ``values`` strictly worse."""
    measured = np.asarray(values, dtype=np.float64)
    if measured.ndim != 1:
        raise ValueError("quintile_scores expects a one-dimensional array, one value per customer")
    if not np.all(np.isfinite(measured)):
        raise ValueError("scored values must be finite")
    key = measured if higher_is_better else -measured
    ordered = np.sort(key)
    below = np.searchsorted(ordered, key, side="left")  # the number of values strictly worse
    scores: IntArray = (5 * below) // max(len(key), 1) + 1
    return scores.astype(np.int64)


def rfm_scores(
    time_since_last_purchase: npt.ArrayLike, frequency: npt.ArrayLike, monetary: npt.ArrayLike
) -> RfmScores:
    """The recency, frequency and monetary scores of each customer within this population.

    ``time_since_last_purchase`` in any one unit (smaller is better); ``frequency`` as a count of
    purchases and ``monetary`` as a total or mean spend, larger being better for both. The three
    arrays hold one value per customer, in the same order.
    """
    recency_score = quintile_scores(time_since_last_purchase, higher_is_better=False)
    frequency_score = quintile_scores(frequency)
    monetary_score = quintile_scores(monetary)
    if not len(recency_score) == len(frequency_score) == len(monetary_score):
        raise ValueError("recency, frequency and monetary hold one value per customer each")
    return RfmScores(recency_score, frequency_score, monetary_score)


def rfm_segment(recency_score: int, frequency_score: int) -> RfmSegment:
    """The segment of a customer with these scores, from the grid of the module docstring."""
    if not (1 <= recency_score <= 5 and 1 <= frequency_score <= 5):
        raise ValueError(f"scores run from 1 to 5, not R={recency_score}, F={frequency_score}")
    return SEGMENT_GRID[recency_score - 1][frequency_score - 1]


def rfm_segments(scores: RfmScores) -> list[RfmSegment]:
    """The segment of each scored customer, in order."""
    return [rfm_segment(int(r), int(f)) for r, f in zip(scores.recency, scores.frequency, strict=True)]


def score_cuts(values: npt.ArrayLike, *, higher_is_better: bool = True) -> list[float]:
    """Four values that score anyone against this population as :func:`quintile_scores` does.

    A value scores 1 plus the number of cuts it beats (see :func:`score_against`). This is how
    one customer's new purchase is scored in real time without reading the whole population.
    """
    measured = np.asarray(values, dtype=np.float64)
    key = np.sort(measured if higher_is_better else -measured)
    if len(key) == 0:
        return []
    # Score k needs at least ceil((k-1)·N/5) values strictly worse, i.e. beating the value at that rank - 1.
    ranks = [-(-(k - 1) * len(key) // 5) - 1 for k in range(2, 6)]
    return [float(key[max(rank, 0)]) if rank >= 0 else float("-inf") for rank in ranks]


def score_against(value: float, cuts: list[float], *, higher_is_better: bool = True) -> int:
    """The 1-5 score of ``value`` against the cuts of :func:`score_cuts` (3 when there are none)."""
    if not cuts:
        return 3
    key = value if higher_is_better else -value
    return 1 + sum(1 for cut in cuts if key > cut)
