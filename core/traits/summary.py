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
    rows = list(transactions)
    customers = tuple(sorted({customer for customer, _, _ in rows}))
    index = {customer: position for position, customer in enumerate(customers)}
    codes = np.fromiter((index[customer] for customer, _, _ in rows), np.int64, len(rows))
    days = np.fromiter((_day(when) for _, when, _ in rows), np.int64, len(rows))
    amounts = np.fromiter((float(amount) for _, _, amount in rows), np.float64, len(rows))
    bad = np.flatnonzero(~np.isfinite(amounts) & (days <= _day(observation_end)))
    if bad.size:
        customer, when, _ = rows[int(bad[0])]
        raise ValueError(f"the amount of a transaction of {customer!r} on {when} is not finite")
    return summarize_days(customers, codes, days, amounts, _day(observation_end), unit)


def summarize_days(
    customers: tuple[str, ...],
    codes: npt.NDArray[np.int64],
    days: npt.NDArray[np.int64],
    amounts: npt.NDArray[np.float64],
    end_day: int,
    unit: TimeUnit = "days",
) -> PurchaseSummary:
    """:func:`summarize_transactions` over arrays: per transaction, its customer's position in the
    sorted ``customers``, its day (an ordinal) and its amount; sums add up in the given order."""
    if unit not in DAYS_PER_UNIT:
        raise ValueError(f"the time unit is 'days' or 'weeks', not {unit!r}")
    kept = days <= end_day
    codes, days, amounts = codes[kept], days[kept], amounts[kept]
    if codes.size == 0:
        empty = np.zeros(0)
        return PurchaseSummary((), empty, empty, empty, empty, unit)
    # One group per (customer, day), sorted by customer then day; its amount is the day's total.
    low = int(days.min())
    span = int(days.max()) - low + 1
    groups, inverse = np.unique(codes * span + (days - low), return_inverse=True)
    day_total = np.bincount(inverse.reshape(-1), weights=amounts, minlength=groups.size)
    group_customer, group_day = groups // span, groups % span + low
    present, first, count = np.unique(group_customer, return_index=True, return_counts=True)
    last = first + count - 1
    repeat = np.ones(groups.size, dtype=bool)
    repeat[first] = False
    owner = np.repeat(np.arange(present.size), count)
    repeat_total = np.bincount(owner[repeat], weights=day_total[repeat], minlength=present.size)
    frequency = (count - 1).astype(np.float64)
    monetary_value = np.divide(repeat_total, frequency, out=np.zeros(present.size), where=frequency > 0)
    scale = DAYS_PER_UNIT[unit]
    recency = (group_day[last] - group_day[first]).astype(np.float64) / scale
    big_t = (end_day - group_day[first]).astype(np.float64) / scale
    return PurchaseSummary(
        tuple(customers[i] for i in present), frequency, recency, big_t, monetary_value, unit
    )


def _day(when: date) -> int:
    """The calendar day of ``when`` as an ordinal (the date of a datetime, in its own time zone)."""
    return (when.date() if isinstance(when, datetime) else when).toordinal()
