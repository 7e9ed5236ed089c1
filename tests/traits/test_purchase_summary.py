"""From transactions to (frequency, recency, T, monetary value): a hand-made shop, then CDNOW."""

from __future__ import annotations

import csv
import random
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from core.traits.summary import Transaction, summarize_transactions

DATA = Path(__file__).parent / "data"

SHOP: list[Transaction] = [
    ("ann", datetime(2024, 1, 1, 9, 30), 20.0),
    ("ann", datetime(2024, 1, 1, 18, 0), 5.0),  # the same day: one purchase worth 25
    ("ann", date(2024, 1, 8), 30.0),
    ("ann", datetime(2024, 1, 29, 23, 59, tzinfo=UTC), Decimal("12.50")),
    ("bob", datetime(2024, 1, 15, 12, 0), 99.0),  # one purchase only
    ("cat", datetime(2024, 1, 31, 8, 0), 10.0),
    ("cat", datetime(2024, 2, 2, 8, 0), 14.0),  # after the observation end: ignored
    ("dan", datetime(2024, 3, 1, 8, 0), 50.0),  # all after the end: dan is absent
]
END = date(2024, 1, 31)


def test_a_small_shop_in_days() -> None:
    summary = summarize_transactions(SHOP, END)
    assert summary.customers == ("ann", "bob", "cat")
    assert summary.unit == "days"
    assert summary.frequency.tolist() == [2, 0, 0]  # ann came back on the 8th and the 29th
    assert summary.recency.tolist() == [28, 0, 0]
    assert summary.T.tolist() == [30, 16, 0]  # cat's first purchase is on the last day
    assert summary.monetary_value.tolist() == [21.25, 0.0, 0.0]  # repeat purchases only: (30 + 12.5) / 2


def test_weeks_only_rescale_time() -> None:
    in_days = summarize_transactions(SHOP, END, unit="days")
    in_weeks = summarize_transactions(SHOP, datetime(2024, 1, 31, 23, 0), unit="weeks")
    assert in_weeks.unit == "weeks"
    assert in_weeks.frequency.tolist() == in_days.frequency.tolist()  # nothing merged by the week
    assert in_weeks.recency == pytest.approx(in_days.recency / 7)
    assert in_weeks.T == pytest.approx(in_days.T / 7)
    assert in_weeks.monetary_value.tolist() == in_days.monetary_value.tolist()


def test_the_summary_does_not_depend_on_the_order_of_transactions() -> None:
    shuffled = SHOP.copy()
    random.Random(3).shuffle(shuffled)
    expected, got = summarize_transactions(SHOP, END), summarize_transactions(shuffled, END)
    assert got.customers == expected.customers
    for column in ("frequency", "recency", "T", "monetary_value"):
        assert getattr(got, column).tolist() == getattr(expected, column).tolist()


def test_no_transactions_give_an_empty_summary_and_bad_input_is_rejected() -> None:
    assert summarize_transactions([], END).customers == ()
    with pytest.raises(ValueError, match="'days' or 'weeks'"):
        summarize_transactions(SHOP, END, unit="months")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not finite"):
        summarize_transactions([("ann", END, float("nan"))], END)


def test_the_cdnow_transactions_give_the_published_cdnow_summary() -> None:
    # CDNOW_sample.txt: customer id, panel id (the summary's ID), date, CDs bought, dollars. The
    # papers' calibration period runs to 1997-09-30, 39 weeks after the first cohort's 1 January.
    transactions: list[Transaction] = []
    with (DATA / "CDNOW_sample.txt").open() as file:
        for line in file:
            _, panel_id, day, _, dollars = line.split()
            transactions.append(
                (str(int(panel_id)), date(int(day[:4]), int(day[4:6]), int(day[6:])), float(dollars))
            )
    summary = summarize_transactions(transactions, date(1997, 9, 30), unit="weeks")
    with (DATA / "cdnow_customers_summary_with_transactions.csv").open(newline="") as file:
        published = {row["ID"]: row for row in csv.DictReader(file)}
    assert sorted(summary.customers) == sorted(published)
    rows = [published[customer] for customer in summary.customers]
    assert summary.frequency.tolist() == [float(row["x"]) for row in rows]
    # The published file rounds to cents and hundredths of a week.
    for column, name in (("recency", "t_x"), ("T", "T"), ("monetary_value", "zbar")):
        published_column = np.array([float(row[name]) for row in rows])
        assert np.abs(getattr(summary, column) - published_column).max() <= 0.005 + 1e-9, column
