"""From transactions to the per-customer summary the purchase and spend models read.

Nothing here touches a database. :func:`summarize_transactions` takes ``(customer key, when,
amount)`` triples and an observation end, and returns, per customer, the ``frequency``,
``recency``, ``T`` and ``monetary_value`` of :mod:`core.traits.clv`.

Conventions
===========

- **One purchase per customer per calendar day.** Transactions of one customer on one day (the
  date of their timestamp, as given: convert timestamps to the tenant's time zone first) count as
  a single purchase whose amount is their sum. This is how Fader & Hardie built the CDNOW summary
  of the BG/NBD paper (time in weeks at the precision of a day), which this module reproduces
  exactly (``tests/traits/test_clv.py``). It also keeps an order split into several payments from
  looking like several purchases.
- **The unit only scales time.** ``unit="weeks"`` measures ``recency`` and ``T`` in days / 7
  (fractional weeks); it does *not* merge the purchases of one week, unlike lifetimes'
  ``freq="W"``. The models are continuous in time, so a coarser bucket would only lose
  information.
- ``frequency`` is the number of purchase days after the first; ``recency`` the time from the
  first purchase day to the last; ``T`` the time from the first purchase day to the day of the
  observation end; ``monetary_value`` the mean amount of the repeat purchase days, 0 without any.
- Transactions after the day of the observation end are ignored, so that a history can be cut
  into a calibration period and a holdout; a customer whose purchases all come later is absent.
- Amounts are taken as they are: refunds and returns are the caller's business.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, SupportsFloat

import numpy as np
import numpy.typing as npt

TimeUnit = Literal["days", "weeks"]
DAYS_PER_UNIT: dict[TimeUnit, int] = {"days": 1, "weeks": 7}

Transaction = tuple[str, date, SupportsFloat]
"""``(customer key, when, amount)``; ``when`` is a :class:`~datetime.date` or a
:class:`~datetime.datetime`."""


@dataclass(frozen=True, eq=False)
class PurchaseSummary:
    """Per-customer summaries, aligned: ``frequency[i]`` is that of ``customers[i]``.

    Customers are sorted by key, so the summary does not depend on the order of the transactions.
    ``recency`` and ``T`` are in ``unit``.
    """

    customers: tuple[str, ...]
    frequency: npt.NDArray[np.float64]
    recency: npt.NDArray[np.float64]
    T: npt.NDArray[np.float64]
    monetary_value: npt.NDArray[np.float64]
    unit: TimeUnit


def summarize_transactions(
    transactions: Iterable[Transaction], observation_end: date, unit: TimeUnit = "days"
) -> PurchaseSummary:
    """The ``frequency``, ``recency``, ``T`` and ``monetary_value`` of each customer who bought
    by ``observation_end``, following the conventions of the module docstring."""
    if unit not in DAYS_PER_UNIT:
        raise ValueError(f"the time unit is 'days' or 'weeks', not {unit!r}")
    end_day = _day(observation_end)
    spent: defaultdict[str, defaultdict[int, float]] = defaultdict(lambda: defaultdict(float))
    for customer, when, amount in transactions:
        day = _day(when)
        if day <= end_day:
            value = float(amount)
            if not np.isfinite(value):
                raise ValueError(f"the amount of a transaction of {customer!r} on {when} is not finite")
            spent[customer][day] += value
    customers = tuple(sorted(spent))
    frequency, recency, big_t, monetary_value = (np.zeros(len(customers)) for _ in range(4))
    for position, customer in enumerate(customers):
        days = sorted(spent[customer].items())
        first_day, last_day = days[0][0], days[-1][0]
        repeats = [amount for _, amount in days[1:]]
        frequency[position] = len(repeats)
        recency[position] = last_day - first_day
        big_t[position] = end_day - first_day
        monetary_value[position] = sum(repeats) / len(repeats) if repeats else 0.0
    scale = DAYS_PER_UNIT[unit]
    return PurchaseSummary(customers, frequency, recency / scale, big_t / scale, monetary_value, unit)


def _day(when: date) -> int:
    """The calendar day of ``when`` as an ordinal (the date of a datetime, in its own time zone)."""
    return (when.date() if isinstance(when, datetime) else when).toordinal()
