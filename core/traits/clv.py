"""Customer lifetime value: the BG/NBD purchase model and the Gamma-Gamma spend model.

Nothing here touches a database. The fits take one tenant's per-customer summary (see
:func:`core.traits.summary.summarize_transactions`) and return frozen parameters; the predictions
are vectorized over customers and are pure functions of those parameters.

The summary
===========

For each customer, over an observation period that starts at their first purchase:

- ``frequency`` (*x*): the number of repeat purchases, i.e. purchases after the first;
- ``recency`` (*t_x*): the time from the first purchase to the last one (0 when *x* = 0); note that
  this is *not* the "time since the last purchase" that RFM calls recency;
- ``T``: the time from the first purchase to the end of the observation period;
- ``monetary_value``: the mean value of the repeat purchases (the first purchase is left out, as
  in the papers: it is often unlike the others, with a welcome discount, say).

Time is in one unit throughout (days or weeks): ``recency``, ``T``, the horizons of the
predictions and the fitted ``alpha`` share it. Changing the unit rescales ``alpha`` only.

The purchase model: BG/NBD
==========================

Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way: An Alternative to the
Pareto/NBD Model", *Marketing Science* 24(2), 275-284.

- While alive, a customer buys as a Poisson process of rate λ; across customers
  λ ~ Gamma(shape ``r``, rate ``alpha``).
- Right after each repeat purchase, the customer drops out for good with probability *p*; across
  customers *p* ~ Beta(``a``, ``b``).
- Customers are alive at their first purchase. So under this model a customer who never bought
  again is alive with probability 1 (:func:`probability_alive`): they cannot have dropped out
  without a purchase to drop out after. The model is known for this; it still predicts few
  purchases for them when ``T`` is long, through a low posterior λ.

The spend model: Gamma-Gamma
============================

Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer Base Analysis",
*Journal of Marketing Research* 42(4), 415-430, after Colombo & Jiang (1999), "A stochastic RFM
model", *Journal of Interactive Marketing* 13(3), 2-12; the likelihood as in Fader & Hardie's note
"The Gamma-Gamma Model of Monetary Value" (2013).

- The values of a customer's transactions are Gamma(shape ``p``, rate ν); across customers
  ν ~ Gamma(shape ``q``, rate ``gamma``). The mean spend of the population is ``p·gamma/(q-1)``,
  finite only when ``q`` > 1.
- Spend is assumed independent of the purchase process. Check before relying on it that
  frequency and monetary value are only weakly correlated among repeat buyers.

Fitting
=======

Both fits maximize the likelihood with :func:`scipy.optimize.minimize` (L-BFGS-B) over the
logarithms of the parameters, so that they stay positive; the logarithms are bounded to
``[-LOG_PARAMETER_BOUND, LOG_PARAMETER_BOUND]`` so that a model degenerating towards a limit (no
visible dropout, say, sending ``b`` to infinity) ends at a large finite value instead of running
away. :class:`NotEnoughHistory` is raised instead of returning parameters the data cannot support:

- BG/NBD: fewer than :data:`MIN_CUSTOMERS` customers, or fewer than :data:`MIN_REPEAT_BUYERS`
  of them with a repeat purchase (dropout is only visible through repeat buyers: without them
  ``a`` and ``b`` are not identified);
- Gamma-Gamma: fewer than :data:`MIN_SPEND_CUSTOMERS` repeat buyers with a positive monetary
  value, or a fitted ``q`` ≤ 1 (spend so heavy-tailed that the model has no finite mean);
- either: an optimizer that fails to reach a finite optimum.

The thresholds are rules of thumb (about ten customers per parameter), not statistical
guarantees: past them the fit is defined, and its precision still grows with the data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import betaln, expit, gammaln, hyp2f1

FloatArray = npt.NDArray[np.float64]

MIN_CUSTOMERS = 50
"""The fewest customers :func:`fit_bgnbd` accepts (four parameters, about ten customers each)."""
MIN_REPEAT_BUYERS = 10
"""The fewest customers with a repeat purchase :func:`fit_bgnbd` accepts."""
MIN_SPEND_CUSTOMERS = 20
"""The fewest repeat buyers with positive spend :func:`fit_gamma_gamma` accepts."""
LOG_PARAMETER_BOUND = 15.0
"""Fitted parameters stay within ``exp(±15)``, about ``3e-7`` to ``3e6``."""


class NotEnoughHistory(ValueError):
    """The purchase history cannot support a fit; show "not enough history", not a number."""


@dataclass(frozen=True)
class BgNbdParams:
    """Fitted BG/NBD parameters: purchase rates ~ Gamma(r, alpha), dropout ~ Beta(a, b).

    ``alpha`` is in the time unit of the data it was fitted on.
    """

    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class GammaGammaParams:
    """Fitted Gamma-Gamma parameters: transaction values ~ Gamma(p, ν), ν ~ Gamma(q, gamma).

    ``gamma`` is in the currency of the data it was fitted on.
    """

    p: float
    q: float
    gamma: float


# --- BG/NBD -------------------------------------------------------------------------------------
def bgnbd_log_likelihood(
    params: BgNbdParams, frequency: npt.ArrayLike, recency: npt.ArrayLike, T: npt.ArrayLike
) -> float:
    """The BG/NBD log-likelihood of the customers' summaries under ``params`` (a sum over them)."""
    x, t_x, big_t = _purchase_summary(frequency, recency, T)
    return float(np.sum(_bgnbd_log_likelihoods(params.r, params.alpha, params.a, params.b, x, t_x, big_t)))


def fit_bgnbd(frequency: npt.ArrayLike, recency: npt.ArrayLike, T: npt.ArrayLike) -> BgNbdParams:
    """The maximum-likelihood BG/NBD parameters for one population of customers.

    Raises :class:`NotEnoughHistory` when the data cannot support a fit (see the module docstring)
    and :class:`ValueError` when the summaries are inconsistent (a negative or fractional
    frequency, a recency outside ``[0, T]``, a recency other than 0 without a repeat purchase).
    """
    x, t_x, big_t = _purchase_summary(frequency, recency, T)
    if x.ndim != 1:
        raise ValueError("fit_bgnbd expects one-dimensional arrays, one value per customer")
    repeat_buyers = int(np.count_nonzero(x))
    if x.size < MIN_CUSTOMERS or repeat_buyers < MIN_REPEAT_BUYERS:
        raise NotEnoughHistory(
            f"the purchase model needs at least {MIN_CUSTOMERS} customers, {MIN_REPEAT_BUYERS} of them with"
            f" a repeat purchase; got {x.size} customers, {repeat_buyers} with a repeat purchase"
        )

    # Summaries repeat (time is in whole days): the likelihood of each distinct one, weighted by
    # how many customers share it, is the same sum at a fraction of the cost.
    distinct, weights = np.unique(np.stack([x, t_x, big_t], axis=1), axis=0, return_counts=True)
    ux, ut_x, ubig_t = distinct.T
    share = weights / x.size

    def negative_mean_log_likelihood(log_params: FloatArray) -> float:
        r, alpha, a, b = np.exp(log_params)
        return -float(np.sum(share * _bgnbd_log_likelihoods(r, alpha, a, b, ux, ut_x, ubig_t)))

    # Start from unit shapes and a rate scale matching the population's mean purchase rate.
    mean_rate = max(float(x.mean()), 0.1) / max(float(big_t.mean()), 1e-9)
    start = np.log([1.0, 1.0 / mean_rate, 1.0, 1.0])
    r, alpha, a, b = _maximize(negative_mean_log_likelihood, start, "purchase model")
    return BgNbdParams(r=r, alpha=alpha, a=a, b=b)


def probability_alive(
    params: BgNbdParams, frequency: npt.ArrayLike, recency: npt.ArrayLike, T: npt.ArrayLike
) -> FloatArray:
    """P(the customer is still alive at the end of observation | their summary), per customer.

    1 for a customer without repeat purchase (see the module docstring).
    """
    x, t_x, big_t = _purchase_summary(frequency, recency, T)
    return _probability_alive(params, x, t_x, big_t)


def expected_purchases(
    params: BgNbdParams,
    t: npt.ArrayLike,
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,
) -> FloatArray:
    """The expected number of purchases in the ``t`` time units after the observation, per customer.

    The conditional expectation of the BG/NBD paper; ``t`` broadcasts against the customers' arrays.
    """
    x, t_x, big_t = _purchase_summary(frequency, recency, T)
    horizon = np.asarray(t, dtype=np.float64)
    if not np.all(np.isfinite(horizon)) or np.any(horizon < 0):
        raise ValueError("the horizon t must be finite and non-negative")
    r, alpha, b = params.r, params.alpha, params.b
    # The formula is 0/0 at a = 1 exactly; it is continuous there, so step beside the singularity.
    a = params.a if abs(params.a - 1.0) > 1e-7 else 1.0 + 1e-7
    # Paper: (a+b+x-1)/(a-1) · [1 - ((α+T)/(α+T+t))^(r+x) · 2F1(r+x, b+x; a+b+x-1; z)] · P(alive)
    # with z = t/(α+T+t). Euler's transformation turns the product into
    # (1-z)^(a-1) · 2F1(a+b-1-r, a-1; a+b+x-1; z), whose parameters no longer grow with x, so that
    # scipy's series stays accurate for frequent buyers and the power cannot overflow.
    c = a + b + x - 1.0
    z = horizon / (alpha + big_t + horizon)
    with np.errstate(invalid="ignore", over="ignore"):
        still_to_come = 1.0 - (1.0 - z) ** (a - 1.0) * hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
        broken = ~np.isfinite(still_to_come)
        if np.any(broken):
            # With a and b in the millions (a fit at its bounds: dropout barely varies between
            # customers) the transformed series overflows while the paper's own form converges.
            direct = 1.0 - (1.0 - z) ** (r + x) * hyp2f1(r + x, b + x, c, z)
            still_to_come = np.where(broken, direct, still_to_come)
    expected: FloatArray = c / (a - 1.0) * still_to_come * _probability_alive(params, x, t_x, big_t)
    return expected


# --- Gamma-Gamma --------------------------------------------------------------------------------
def gamma_gamma_log_likelihood(
    params: GammaGammaParams, frequency: npt.ArrayLike, monetary_value: npt.ArrayLike
) -> float:
    """The Gamma-Gamma log-likelihood of the repeat buyers' mean spends (customers with x = 0 or
    a non-positive monetary value are left out, as in the fit)."""
    x, z = _spend_summary(frequency, monetary_value)
    used = (x > 0) & (z > 0)
    return float(np.sum(_gamma_gamma_log_likelihoods(params.p, params.q, params.gamma, x[used], z[used])))


def fit_gamma_gamma(frequency: npt.ArrayLike, monetary_value: npt.ArrayLike) -> GammaGammaParams:
    """The maximum-likelihood Gamma-Gamma parameters for one population of customers.

    Fitted on repeat buyers (``frequency`` > 0) only, as their ``monetary_value`` (the mean value
    of their repeat purchases) is the only spend the model sees. Those with a non-positive monetary
    value (free repeat orders) are left out too: a gamma distribution has no mass there. Raises
    :class:`NotEnoughHistory` when the data cannot support a fit (see the module docstring).
    """
    x, z = _spend_summary(frequency, monetary_value)
    if x.ndim != 1:
        raise ValueError("fit_gamma_gamma expects one-dimensional arrays, one value per customer")
    used = (x > 0) & (z > 0)
    x, z = x[used], z[used]
    if x.size < MIN_SPEND_CUSTOMERS:
        raise NotEnoughHistory(
            f"the spend model needs at least {MIN_SPEND_CUSTOMERS} customers with a paid repeat purchase;"
            f" got {x.size}"
        )

    def negative_mean_log_likelihood(log_params: FloatArray) -> float:
        p, q, gamma = np.exp(log_params)
        return -float(np.mean(_gamma_gamma_log_likelihoods(p, q, gamma, x, z)))

    # Start where the population mean p·gamma/(q-1) equals the observed mean spend.
    start = np.log([1.0, 2.0, float(z.mean())])
    p, q, gamma = _maximize(negative_mean_log_likelihood, start, "spend model")
    if q <= 1.0:
        raise NotEnoughHistory(
            f"the spend model found no finite mean spend (q = {q:.3g} <= 1): spend is too heavy-tailed"
            " for the history available"
        )
    return GammaGammaParams(p=p, q=q, gamma=gamma)


def expected_average_spend(
    params: GammaGammaParams, frequency: npt.ArrayLike, monetary_value: npt.ArrayLike
) -> FloatArray:
    """The expected value of a customer's future transactions, given their repeat purchases.

    A weighted mean of the population mean ``p·gamma/(q-1)`` and the customer's own
    ``monetary_value``, the latter weighing more the more repeat purchases back it; a customer
    without repeat purchase gets the population mean, whatever their ``monetary_value``.
    """
    x, z = _spend_summary(frequency, monetary_value)
    p, q, gamma = params.p, params.q, params.gamma
    if q <= 1.0:
        raise ValueError(f"the spend model has no finite mean for q = {q} <= 1")
    own = np.where(x > 0, z, 0.0)  # a customer without repeat purchase has no spend of their own yet
    expected: FloatArray = p * (gamma + x * own) / (p * x + q - 1.0)
    return expected


# --- lifetime value -----------------------------------------------------------------------------
def customer_lifetime_value(
    purchases: BgNbdParams,
    spend: GammaGammaParams,
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,
    monetary_value: npt.ArrayLike,
    horizon: float,
    discount_rate: float = 0.0,
) -> FloatArray:
    """The expected revenue from each customer over the next ``horizon`` time units.

    Expected purchases (BG/NBD) times expected spend per purchase (Gamma-Gamma). With a
    ``discount_rate`` per time unit, the purchases expected in each unit of time ``(k-1, k]``
    are discounted by ``(1 + discount_rate) ** -k``, i.e. as if they all happened at the end of
    their unit (a partial last unit ends at ``horizon``).

    Simplifications to know: this is revenue, not profit (multiply by a margin rate for that); every
    future purchase is worth the same expected spend, independent of how many there are (the
    Gamma-Gamma independence assumption); nothing beyond ``horizon`` counts; discounting is by
    whole time units, so a rate per week with a horizon in days must be converted first.
    """
    if not np.isfinite(horizon) or horizon < 0:
        raise ValueError("the horizon must be finite and non-negative")
    if not np.isfinite(discount_rate) or discount_rate < 0:
        raise ValueError("the discount rate must be finite and non-negative")
    per_purchase = expected_average_spend(spend, frequency, monetary_value)
    if discount_rate == 0.0:
        return expected_purchases(purchases, horizon, frequency, recency, T) * per_purchase
    x, t_x, big_t = _purchase_summary(frequency, recency, T)
    ends = np.minimum(np.arange(1.0, np.ceil(horizon) + 1.0), horizon)  # the ends of the time units
    ends = ends.reshape(ends.shape + (1,) * x.ndim)  # one row per unit, broadcast over customers
    cumulative = expected_purchases(purchases, ends, x, t_x, big_t)
    per_unit = np.diff(cumulative, axis=0, prepend=0.0)
    discounted: FloatArray = np.sum(per_unit * (1.0 + discount_rate) ** -ends, axis=0) * per_purchase
    return discounted


# --- internals ----------------------------------------------------------------------------------
def _bgnbd_log_likelihoods(
    r: float, alpha: float, a: float, b: float, x: FloatArray, t_x: FloatArray, big_t: FloatArray
) -> FloatArray:
    """Per customer: log[B(a,b+x)/B(a,b) · Γ(r+x)α^r/(Γ(r)(α+T)^(r+x))
    + δ(x>0) · B(a+1,b+x-1)/B(a,b) · Γ(r+x)α^r/(Γ(r)(α+t_x)^(r+x))], as in the paper."""
    repeat = x > 0
    shared = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
    alive = betaln(a, b + x) - (r + x) * np.log(alpha + big_t)
    # The dropout term only exists for repeat buyers; evaluate it at x = 1 for the others so that
    # B(a+1, b+x-1) keeps a positive argument, then mask it out.
    x_dropped = np.where(repeat, x, 1.0)
    dropped = np.where(repeat, betaln(a + 1.0, b + x_dropped - 1.0) - (r + x) * np.log(alpha + t_x), -np.inf)
    result: FloatArray = shared + np.logaddexp(alive, dropped)
    return result


def _probability_alive(params: BgNbdParams, x: FloatArray, t_x: FloatArray, big_t: FloatArray) -> FloatArray:
    """1 / (1 + δ(x>0) · a/(b+x-1) · ((α+T)/(α+t_x))^(r+x)), computed as a logistic of logs."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x_dropped = np.where(x > 0, x, 1.0)
    log_odds_dropped = np.log(a / (b + x_dropped - 1.0)) + (r + x) * np.log((alpha + big_t) / (alpha + t_x))
    alive: FloatArray = np.where(x > 0, expit(-log_odds_dropped), 1.0)
    return alive


def _gamma_gamma_log_likelihoods(
    p: float, q: float, gamma: float, x: FloatArray, z: FloatArray
) -> FloatArray:
    """Per repeat buyer: log[Γ(px+q)/(Γ(px)Γ(q)) · γ^q · z^(px-1) · x^(px) / (γ+xz)^(px+q)], the
    density of the mean ``z`` of ``x`` transaction values."""
    px = p * x
    result: FloatArray = (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(gamma)
        + (px - 1.0) * np.log(z)
        + px * np.log(x)
        - (px + q) * np.log(gamma + x * z)
    )
    return result


def _maximize(
    negative_log_likelihood: Callable[[FloatArray], float], start: FloatArray, model: str
) -> list[float]:
    """The parameters minimizing ``negative_log_likelihood`` over their logarithms, from ``start``."""
    bounds = [(-LOG_PARAMETER_BOUND, LOG_PARAMETER_BOUND)] * len(start)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # trial steps may overshoot
        result = minimize(
            negative_log_likelihood,
            start,
            method="L-BFGS-B",
            bounds=bounds,
            options={"ftol": 1e-12, "gtol": 1e-8, "maxiter": 1000},
        )
    if not np.isfinite(result.fun) or not np.all(np.isfinite(result.x)):
        raise NotEnoughHistory(f"the {model} found no finite maximum of its likelihood: {result.message}")
    return [float(value) for value in np.exp(result.x)]


def _purchase_summary(
    frequency: npt.ArrayLike, recency: npt.ArrayLike, T: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The purchase summaries as float arrays of one shape, checked for consistency."""
    x, t_x, big_t = np.broadcast_arrays(
        *(np.asarray(value, dtype=np.float64) for value in (frequency, recency, T))
    )
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(t_x)) and np.all(np.isfinite(big_t))):
        raise ValueError("frequency, recency and T must be finite")
    if np.any(x < 0) or np.any(x != np.round(x)):
        raise ValueError("frequency counts repeat purchases: a non-negative whole number")
    if np.any(t_x < 0) or np.any(t_x > big_t):
        raise ValueError("recency must lie between 0 and T")
    if np.any((x == 0) & (t_x != 0)):
        raise ValueError("recency must be 0 for a customer without repeat purchase")
    return x, t_x, big_t


def _spend_summary(frequency: npt.ArrayLike, monetary_value: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """The spend summaries as float arrays of one shape, checked for consistency."""
    x, z = np.broadcast_arrays(
        np.asarray(frequency, dtype=np.float64), np.asarray(monetary_value, dtype=np.float64)
    )
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(z))):
        raise ValueError("frequency and monetary value must be finite")
    if np.any(x < 0) or np.any(x != np.round(x)):
        raise ValueError("frequency counts repeat purchases: a non-negative whole number")
    return x, z
