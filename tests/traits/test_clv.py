"""BG/NBD and Gamma-Gamma: the published CDNOW fits first, then properties of the predictions."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from core.traits.clv import (
    MIN_CUSTOMERS,
    MIN_REPEAT_BUYERS,
    MIN_SPEND_CUSTOMERS,
    BgNbdParams,
    GammaGammaParams,
    NotEnoughHistory,
    bgnbd_log_likelihood,
    customer_lifetime_value,
    expected_average_spend,
    expected_purchases,
    fit_bgnbd,
    fit_gamma_gamma,
    probability_alive,
)

DATA = Path(__file__).parent / "data"
# Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way", CDNOW, 39 weeks of calibration.
PAPER_BGNBD = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
PAPER_LOG_LIKELIHOOD = -9582.4
# Fader & Hardie's Gamma-Gamma note on the same customers (lifetimes' docs: 6.25, 3.74, 15.45).
PAPER_GAMMA_GAMMA = GammaGammaParams(p=6.25, q=3.74, gamma=15.44)


def load_cdnow() -> dict[str, np.ndarray]:
    """The CDNOW calibration summary: x, t_x and T in weeks, zbar in dollars."""
    with (DATA / "cdnow_customers_summary_with_transactions.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    return {column: np.array([float(row[column]) for row in rows]) for column in ("x", "t_x", "T", "zbar")}


CDNOW = load_cdnow()


# --- the published fits -------------------------------------------------------------------------
def test_the_bgnbd_fit_reproduces_the_papers_cdnow_parameters() -> None:
    fitted = fit_bgnbd(CDNOW["x"], CDNOW["t_x"], CDNOW["T"])
    assert fitted.r == pytest.approx(PAPER_BGNBD.r, abs=6e-4)
    assert fitted.alpha == pytest.approx(PAPER_BGNBD.alpha, abs=6e-4)
    assert fitted.a == pytest.approx(PAPER_BGNBD.a, abs=6e-4)
    assert fitted.b == pytest.approx(PAPER_BGNBD.b, abs=6e-4)
    log_likelihood = bgnbd_log_likelihood(fitted, CDNOW["x"], CDNOW["t_x"], CDNOW["T"])
    assert log_likelihood == pytest.approx(PAPER_LOG_LIKELIHOOD, abs=0.05)


def test_the_bgnbd_fit_in_days_only_rescales_alpha() -> None:
    in_weeks = fit_bgnbd(CDNOW["x"], CDNOW["t_x"], CDNOW["T"])
    in_days = fit_bgnbd(CDNOW["x"], CDNOW["t_x"] * 7, CDNOW["T"] * 7)
    assert in_days.alpha == pytest.approx(in_weeks.alpha * 7, rel=1e-4)
    assert (in_days.r, in_days.a, in_days.b) == pytest.approx((in_weeks.r, in_weeks.a, in_weeks.b), rel=1e-4)


def test_the_gamma_gamma_fit_reproduces_the_published_cdnow_parameters() -> None:
    fitted = fit_gamma_gamma(CDNOW["x"], CDNOW["zbar"])
    assert fitted.p == pytest.approx(PAPER_GAMMA_GAMMA.p, abs=0.01)
    assert fitted.q == pytest.approx(PAPER_GAMMA_GAMMA.q, abs=0.01)
    assert fitted.gamma == pytest.approx(PAPER_GAMMA_GAMMA.gamma, abs=0.01)


def test_the_papers_customer_expects_1_226_purchases_in_the_next_39_weeks() -> None:
    # The worked example of the BG/NBD paper: x = 2, t_x = 30.43, T = 38.86 weeks.
    assert expected_purchases(PAPER_BGNBD, 39, 2, 30.43, 38.86) == pytest.approx(1.226, abs=5e-4)


# --- not enough history -------------------------------------------------------------------------
def test_too_few_customers_is_not_enough_history() -> None:
    with pytest.raises(NotEnoughHistory, match="at least 50 customers"):
        fit_bgnbd([1, 2, 0], [3.0, 5.0, 0.0], [10.0, 10.0, 10.0])
    enough = slice(0, MIN_CUSTOMERS)
    assert np.count_nonzero(CDNOW["x"][enough]) >= MIN_REPEAT_BUYERS
    fit_bgnbd(CDNOW["x"][enough], CDNOW["t_x"][enough], CDNOW["T"][enough])  # the threshold itself fits
    one_short = slice(0, MIN_CUSTOMERS - 1)
    with pytest.raises(NotEnoughHistory):
        fit_bgnbd(CDNOW["x"][one_short], CDNOW["t_x"][one_short], CDNOW["T"][one_short])


def test_customers_who_never_come_back_are_not_enough_history() -> None:
    many = 500
    with pytest.raises(NotEnoughHistory, match="0 with a repeat purchase"):
        fit_bgnbd(np.zeros(many), np.zeros(many), np.full(many, 30.0))
    with pytest.raises(NotEnoughHistory, match="got 0"):
        fit_gamma_gamma(np.zeros(many), np.zeros(many))


def test_too_few_paid_repeat_purchases_are_not_enough_history_for_spend() -> None:
    repeat_buyers = np.flatnonzero(CDNOW["x"])
    enough = repeat_buyers[:MIN_SPEND_CUSTOMERS]
    fit_gamma_gamma(CDNOW["x"][enough], CDNOW["zbar"][enough])
    with pytest.raises(NotEnoughHistory, match="at least 20 customers"):
        fit_gamma_gamma(CDNOW["x"][enough[:-1]], CDNOW["zbar"][enough[:-1]])
    free = CDNOW["zbar"][enough].copy()
    free[0] = 0.0  # a free repeat order: not a spend the model can describe, so not counted
    with pytest.raises(NotEnoughHistory):
        fit_gamma_gamma(CDNOW["x"][enough], free)


def test_spend_without_a_finite_mean_is_not_enough_history() -> None:
    rng = np.random.default_rng(7)
    frequency = np.ones(400)
    heavy_tailed = rng.pareto(0.6, size=400) + 1.0  # a Pareto tail with no mean
    with pytest.raises(NotEnoughHistory, match="no finite mean"):
        fit_gamma_gamma(frequency, heavy_tailed)


def test_inconsistent_summaries_are_rejected() -> None:
    with pytest.raises(ValueError, match="between 0 and T"):
        probability_alive(PAPER_BGNBD, 2, 40.0, 38.0)
    with pytest.raises(ValueError, match="recency must be 0"):
        probability_alive(PAPER_BGNBD, 0, 3.0, 38.0)
    with pytest.raises(ValueError, match="whole number"):
        probability_alive(PAPER_BGNBD, 1.5, 3.0, 38.0)
    with pytest.raises(ValueError, match="horizon"):
        expected_purchases(PAPER_BGNBD, -1, 2, 3.0, 38.0)


# --- properties of the predictions --------------------------------------------------------------
def test_a_customer_without_repeat_purchase_is_alive_under_bgnbd() -> None:
    # The model only lets customers drop out right after a repeat purchase.
    assert probability_alive(PAPER_BGNBD, [0, 0], [0.0, 0.0], [1.0, 500.0]) == pytest.approx([1.0, 1.0])


def test_probability_alive_falls_with_silence_and_rises_with_recency() -> None:
    silence = probability_alive(PAPER_BGNBD, 3, 10.0, np.array([10.0, 20.0, 40.0, 80.0]))
    assert np.all(np.diff(silence) < 0)
    assert silence[0] == pytest.approx(1 / (1 + PAPER_BGNBD.a / (PAPER_BGNBD.b + 2)))  # bought just now
    recent = probability_alive(PAPER_BGNBD, 3, np.array([5.0, 15.0, 30.0, 38.0]), 38.86)
    assert np.all(np.diff(recent) > 0)
    assert np.all((recent > 0) & (recent <= 1))


def test_expected_purchases_grow_with_the_horizon_and_with_recency() -> None:
    horizons = np.array([0.0, 1.0, 13.0, 39.0, 104.0])
    over_time = expected_purchases(PAPER_BGNBD, horizons, 2, 30.43, 38.86)
    assert over_time[0] == 0.0
    assert np.all(np.diff(over_time) > 0)
    by_recency = expected_purchases(PAPER_BGNBD, 39, 4, np.array([2.0, 10.0, 20.0, 38.0]), 38.86)
    assert np.all(np.diff(by_recency) > 0)
    # Among customers who just bought, the more frequent buyers expect more.
    by_frequency = expected_purchases(PAPER_BGNBD, 39, np.arange(1, 20), 38.86, 38.86)
    assert np.all(np.diff(by_frequency) > 0)


@pytest.mark.parametrize(
    "params",
    [PAPER_BGNBD, BgNbdParams(r=2.0, alpha=10.0, a=3.0, b=6.0)],
    ids=["a below 1 (CDNOW)", "a above 1"],
)
def test_a_new_customers_expectation_matches_a_simulation_of_the_model(params: BgNbdParams) -> None:
    # Simulate BG/NBD directly: N(t) ~ Poisson(λt) purchases while alive, the customer dropping out
    # after a geometric number K >= 1 of repeat purchases, so X(t) = min(N(t), K).
    rng = np.random.default_rng(2005)
    customers, horizon = 400_000, 39.0
    rate = rng.gamma(params.r, 1 / params.alpha, customers)
    dropout = rng.beta(params.a, params.b, customers)
    simulated = np.minimum(rng.poisson(rate * horizon), rng.geometric(dropout))
    standard_error = simulated.std() / np.sqrt(customers)
    predicted = expected_purchases(params, horizon, 0, 0.0, 0.0)
    assert abs(predicted - simulated.mean()) < 4 * standard_error


def test_the_expectation_is_continuous_where_the_formula_is_singular() -> None:
    at_one = BgNbdParams(r=0.5, alpha=30.0, a=1.0, b=5.0)
    near_one = BgNbdParams(r=0.5, alpha=30.0, a=1.0 + 1e-4, b=5.0)
    assert expected_purchases(at_one, 39, [0, 3], [0.0, 20.0], [38.0, 38.0]) == pytest.approx(
        expected_purchases(near_one, 39, [0, 3], [0.0, 20.0], [38.0, 38.0]), rel=1e-3
    )


def test_expected_spend_shrinks_a_customers_mean_towards_the_population_mean() -> None:
    params = PAPER_GAMMA_GAMMA
    population_mean = params.p * params.gamma / (params.q - 1)
    # A customer without repeat purchase gets the population mean, whatever their monetary value.
    assert expected_average_spend(params, [0, 0], [0.0, 99.0]) == pytest.approx([population_mean] * 2)
    frequencies = np.array([1, 2, 5, 20, 200])
    big_spender = expected_average_spend(params, frequencies, 100.0)
    assert np.all((big_spender > population_mean) & (big_spender < 100.0))
    assert np.all(np.diff(big_spender) > 0)
    assert big_spender[-1] == pytest.approx(100.0, rel=0.01)
    small_spender = expected_average_spend(params, frequencies, 5.0)
    assert np.all((small_spender < population_mean) & (small_spender > 5.0))


def test_lifetime_value_is_purchases_times_spend_less_discounting() -> None:
    summary = (CDNOW["x"][:200], CDNOW["t_x"][:200], CDNOW["T"][:200], CDNOW["zbar"][:200])
    undiscounted = customer_lifetime_value(PAPER_BGNBD, PAPER_GAMMA_GAMMA, *summary, horizon=52)
    expected = expected_purchases(PAPER_BGNBD, 52, *summary[:3]) * expected_average_spend(
        PAPER_GAMMA_GAMMA, summary[0], summary[3]
    )
    assert undiscounted == pytest.approx(expected)
    weekly = customer_lifetime_value(
        PAPER_BGNBD, PAPER_GAMMA_GAMMA, *summary, horizon=52, discount_rate=0.002
    )
    steeper = customer_lifetime_value(
        PAPER_BGNBD, PAPER_GAMMA_GAMMA, *summary, horizon=52, discount_rate=0.02
    )
    assert np.all((steeper < weekly) & (weekly < undiscounted))
    negligible = customer_lifetime_value(
        PAPER_BGNBD, PAPER_GAMMA_GAMMA, *summary, horizon=52, discount_rate=1e-9
    )
    assert negligible == pytest.approx(undiscounted)


def test_discounting_sums_each_time_units_purchases_at_its_end() -> None:
    one = (2, 30.43, 38.86, 22.35)
    cumulative = [expected_purchases(PAPER_BGNBD, week, *one[:3]) for week in (0.0, 1.0, 2.0, 2.5)]
    spend = expected_average_spend(PAPER_GAMMA_GAMMA, one[0], one[3])
    by_hand = sum(
        (cumulative[k] - cumulative[k - 1]) * 1.1**-end
        for k, end in zip((1, 2, 3), (1.0, 2.0, 2.5), strict=True)
    )
    value = customer_lifetime_value(PAPER_BGNBD, PAPER_GAMMA_GAMMA, *one, horizon=2.5, discount_rate=0.1)
    assert value == pytest.approx(by_hand * spend)


def test_expectations_stay_finite_for_a_fit_at_its_bounds() -> None:
    # a and b in the millions: what a fit gives when dropout barely varies between customers.
    params = BgNbdParams(r=1.19, alpha=41.9, a=3.2e6, b=6.6e6)
    expected = expected_purchases(params, 30, [0.0, 2.0, 5.0], [0.0, 40.0, 200.0], [300.0, 300.0, 300.0])
    assert np.all(np.isfinite(expected)) and np.all(expected >= 0)
    # There 2F1(r+x, b+x; a+b+x-1; z) tends to (1 - q·z)^-(r+x), q = b/(a+b): the limit, for x = 0.
    a, b, r, z = params.a, params.b, params.r, 30 / (41.9 + 300 + 30)
    limit = (a + b - 1) / (a - 1) * (1 - ((1 - z) / (1 - b / (a + b) * z)) ** r)
    assert expected[0] == pytest.approx(limit, rel=1e-4)
