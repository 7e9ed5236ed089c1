"""Computing traits for a tenant: fit the models, score every buyer, refresh one buyer at once.

- :func:`fit_models` fits BG/NBD and Gamma-Gamma on every buyer's purchases up to ``as_of`` and
  stores a :class:`TraitFit` (with a "not enough history" status rather than nonsense).
- :func:`compute_all` writes every buyer's :class:`ComputedTraits` from their purchases and the
  latest fit: revenue, RFM scores and segment within the tenant, churn risk (1 - P(alive)),
  expected purchases in the next 30 and 90 days, and predicted value over 365 days. It also
  keeps, on the fit, the RFM cut points of this population.
- :func:`refresh_profiles` recomputes some buyers right after new orders, scoring them against
  those cut points, so a purchase shows on the profile without waiting for the next batch.

Time is counted in days, in the tenant's time zone (one purchase per customer per day: see
:mod:`core.traits.summary`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from core.db.base import utcnow
from core.db.bulk import delete_in, insert_rows
from core.traits.models import ComputedTraits, TraitFit
from core.traits.purchases import Purchase, purchases

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from core.traits.summary import PurchaseSummary, TimeUnit

# numpy and scipy (core.traits.clv, .rfm, .summary) are imported where they are used: they add
# about half a second and 50 MiB to every process that starts, and only the workers compute.

UNIT: TimeUnit = "days"
PROPENSITY_DAYS = (30, 90)
CLV_DAYS = 365
TRAITS = ComputedTraits.__table__  # type: ignore[attr-defined]
ZERO = timedelta(0)
PREDICTIONS = ("churn_risk", "expected_purchases_30", "expected_purchases_90", "predicted_clv")


def latest_fit(session: Session) -> TraitFit | None:
    """The most recent fit, if the tenant was ever fitted."""
    return session.exec(
        select(TraitFit).order_by(col(TraitFit.fitted_at).desc(), col(TraitFit.id).desc())
    ).first()


EPOCH_DAY = date(1970, 1, 1).toordinal()


def local_days(moments: Sequence[datetime], zone: tzinfo) -> npt.NDArray[np.int64]:
    """The calendar day (an ordinal) of each moment in ``zone``; offsets looked up once per UTC hour."""
    import numpy as np

    seconds = np.fromiter((moment.timestamp() for moment in moments), np.float64, len(moments))
    hours, inverse = np.unique(np.floor(seconds / 3600), return_inverse=True)
    offsets = np.array(
        [(datetime.fromtimestamp(hour * 3600, UTC).astimezone(zone).utcoffset() or ZERO).total_seconds()
         for hour in hours.tolist()], dtype=np.float64,
    )  # fmt: skip
    local = seconds + offsets[inverse.reshape(-1)]
    return np.floor(local / 86400).astype(np.int64) + EPOCH_DAY


@dataclass(frozen=True, eq=False)
class History:
    """Every buyer's purchases up to ``end`` (oldest first) as arrays, and their summary.

    ``buyers`` are sorted profile ids; per purchase, ``codes`` is its buyer's position, ``days``
    its local calendar day, ``amounts`` its amount. Read once, used by the fit and the scoring.
    """

    end: datetime
    zone: tzinfo
    bought: list[Purchase]
    buyers: tuple[str, ...]
    codes: npt.NDArray[np.int64]
    days: npt.NDArray[np.int64]
    amounts: npt.NDArray[np.float64]
    summary: PurchaseSummary


def history_of(bought: list[Purchase], end: datetime, zone: tzinfo) -> History:
    """The history of these purchases (in time order) as of ``end`` in ``zone``."""
    import numpy as np

    from core.traits.summary import summarize_days

    buyers = tuple(sorted({p.profile_id for p in bought}))
    index = {buyer: position for position, buyer in enumerate(buyers)}
    codes = np.fromiter((index[p.profile_id] for p in bought), np.int64, len(bought))
    days = local_days([p.at for p in bought], zone)
    amounts = np.fromiter((p.amount for p in bought), np.float64, len(bought))
    end_day = int(local_days([end], zone)[0])
    summary = summarize_days(buyers, codes, days, amounts, end_day, UNIT)
    assert summary.customers == buyers  # every purchase is up to ``end``: the arrays line up
    return History(end, zone, bought, buyers, codes, days, amounts, summary)


def load_history(session: Session, end: datetime, zone: tzinfo = UTC) -> History:
    """The purchases up to ``end`` and their summary in the tenant's time zone."""
    return history_of(purchases(session, until=end), end, zone)


def fit_models(
    session: Session, as_of: datetime | None = None, zone: tzinfo = UTC, history: History | None = None
) -> TraitFit:
    """Fit both models on the purchases up to ``as_of`` (default now) and store the fit.

    ``history``: the purchases up to ``as_of``, when the caller already read them.
    """
    import numpy as np

    from core.traits import clv

    as_of = history.end if history else (as_of or utcnow())
    summary = (history or load_history(session, as_of, zone)).summary
    problems: list[str] = []
    bgnbd: clv.BgNbdParams | None = None
    spend: clv.GammaGammaParams | None = None
    try:
        bgnbd = clv.fit_bgnbd(summary.frequency, summary.recency, summary.T)
    except clv.NotEnoughHistory as exc:
        problems.append(f"purchase model: {exc}")
    try:
        spend = clv.fit_gamma_gamma(summary.frequency, summary.monetary_value)
    except clv.NotEnoughHistory as exc:
        problems.append(f"spend model: {exc}")
    fit = TraitFit(
        as_of=as_of, time_unit=UNIT, status="fitted" if bgnbd and spend else "not_enough_history",
        message="; ".join(problems)[:1000], customers=len(summary.customers),
        repeat_buyers=int(np.count_nonzero(summary.frequency)),
        bgnbd=asdict(bgnbd) if bgnbd else None, gamma_gamma=asdict(spend) if spend else None,
    )  # fmt: skip
    session.add(fit)
    session.flush()
    return fit


def _predictions(fit: TraitFit | None, summary: PurchaseSummary) -> dict[str, Any]:
    """Churn risk, expected purchases and predicted value per customer (None without a model)."""
    import numpy as np

    from core.traits import clv

    count = len(summary.customers)
    none: list[float | None] = [None] * count
    out: dict[str, Any] = dict.fromkeys(PREDICTIONS, none)
    if fit is None or fit.bgnbd is None or count == 0:
        return out
    purchase_model = clv.BgNbdParams(**fit.bgnbd)
    # Many customers share a (frequency, recency, T) summary: the purchase model runs once per
    # distinct summary, its results are spread back to the customers.
    triples = np.stack([summary.frequency, summary.recency, summary.T], axis=1)
    distinct, inverse = np.unique(triples, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    x, t_x, big_t = distinct.T
    out["churn_risk"] = _finite((1.0 - clv.probability_alive(purchase_model, x, t_x, big_t))[inverse])
    expected = {days: clv.expected_purchases(purchase_model, days, x, t_x, big_t)[inverse]
                for days in (*PROPENSITY_DAYS, CLV_DAYS)}  # fmt: skip
    for days in PROPENSITY_DAYS:
        out[f"expected_purchases_{days}"] = _finite(expected[days])
    if fit.gamma_gamma is not None:
        # Undiscounted lifetime value (clv.customer_lifetime_value): purchases times spend per purchase.
        spend_model = clv.GammaGammaParams(**fit.gamma_gamma)
        per_purchase = clv.expected_average_spend(spend_model, summary.frequency, summary.monetary_value)
        out["predicted_clv"] = _finite(expected[CLV_DAYS] * per_purchase)
    return out


def _finite(values: Any) -> list[float | None]:
    """Plain floats, with None where the model's arithmetic broke down (a degenerate fit)."""
    import numpy as np

    array = np.asarray(values, dtype=np.float64)
    return [v if ok else None for v, ok in zip(array.tolist(), np.isfinite(array).tolist(), strict=True)]


@dataclass(frozen=True, eq=False)
class Totals:
    """Per buyer (in ``History.buyers`` order): orders, revenue, first and last order, days since."""

    orders: list[int]
    revenue: list[float]
    first_order_at: list[datetime]
    last_order_at: list[datetime]
    days_since_last_order: list[float]


def totals_of(history: History, now: datetime) -> Totals:
    """What each buyer's orders add up to, counted at ``now`` in the history's time zone."""
    import numpy as np

    count = len(history.buyers)
    orders = np.bincount(history.codes, minlength=count)
    revenue = np.bincount(history.codes, weights=history.amounts, minlength=count)
    # Purchases are in time order: a buyer's first is their first occurrence, their last the first
    # occurrence in reverse.
    first = np.unique(history.codes, return_index=True)[1]
    last = len(history.codes) - 1 - np.unique(history.codes[::-1], return_index=True)[1]
    today = int(local_days([now], history.zone)[0])
    bought = history.bought
    return Totals(
        orders.tolist(), revenue.tolist(), [bought[i].at for i in first.tolist()],
        [bought[i].at for i in last.tolist()], (today - history.days[last]).astype(np.float64).tolist(),
    )  # fmt: skip


def _rows(
    history: History, totals: Totals, now: datetime, fit: TraitFit | None,
    scores: tuple[list[int], list[int], list[int]],
) -> list[dict[str, Any]]:  # fmt: skip
    from core.traits.rfm import rfm_segment

    predicted = _predictions(fit, history.summary)
    details = {"fit_id": fit.id if fit else None}
    churn, next_30, next_90, value = (predicted[name] for name in PREDICTIONS)
    rows = []
    for i, profile_id in enumerate(history.buyers):
        recency, frequency, monetary = scores[0][i], scores[1][i], scores[2][i]
        rows.append({
            "profile_id": profile_id, "orders": totals.orders[i], "revenue": round(totals.revenue[i], 2),
            "first_order_at": totals.first_order_at[i], "last_order_at": totals.last_order_at[i],
            "days_since_last_order": totals.days_since_last_order[i],
            "rfm_recency": recency, "rfm_frequency": frequency, "rfm_monetary": monetary,
            "rfm_segment": rfm_segment(recency, frequency).value,
            "churn_risk": churn[i], "expected_purchases_30": next_30[i], "expected_purchases_90": next_90[i],
            "predicted_clv": value[i], "computed_at": now, "details": details,
        })  # fmt: skip
    return rows


def compute_all(
    session: Session, now: datetime | None = None, zone: tzinfo = UTC, history: History | None = None
) -> int:
    """Recompute every buyer's traits with the latest fit; returns how many buyers there are.

    ``history``: the purchases up to ``now``, when the caller already read them.
    """
    from core.traits.rfm import rfm_scores, score_cuts

    now = history.end if history else (now or utcnow())
    fit = latest_fit(session)
    history = history or load_history(session, now, zone)
    totals = totals_of(history, now)
    days, counts, revenue = totals.days_since_last_order, totals.orders, totals.revenue
    scored = rfm_scores(days, counts, revenue) if history.buyers else None
    scores = (
        (scored.recency.tolist(), scored.frequency.tolist(), scored.monetary.tolist())
        if scored
        else ([], [], [])
    )
    rows = _rows(history, totals, now, fit, scores)
    session.exec(delete(ComputedTraits))  # type: ignore[call-overload]
    insert_rows(session.connection(), TRAITS, rows)
    if fit is not None:
        fit.rfm_cuts = {
            "recency": score_cuts(days, higher_is_better=False), "frequency": score_cuts(counts),
            "monetary": score_cuts(revenue),
        }  # fmt: skip
        session.add(fit)
    session.flush()
    return len(rows)


def refresh_profiles(
    session: Session, profile_ids: Collection[str], now: datetime | None = None, zone: tzinfo = UTC
) -> int:
    """Recompute some buyers' traits now, scored against the tenant's last RFM cut points."""
    if not profile_ids:
        return 0
    from core.traits.rfm import score_against

    now = now or utcnow()
    fit = latest_fit(session)
    history = history_of(purchases(session, profile_ids, until=now), now, zone)
    totals = totals_of(history, now)
    cuts = (fit.rfm_cuts if fit else None) or {}
    scores = (
        [
            score_against(d, cuts.get("recency", []), higher_is_better=False)
            for d in totals.days_since_last_order
        ],
        [score_against(c, cuts.get("frequency", [])) for c in totals.orders],
        [score_against(r, cuts.get("monetary", [])) for r in totals.revenue],
    )
    rows = _rows(history, totals, now, fit, scores)
    connection = session.connection()
    delete_in(connection, TRAITS, TRAITS.c.profile_id, profile_ids, pg_type="text")
    insert_rows(connection, TRAITS, rows)
    return len(rows)


def fit_json(fit: TraitFit | None) -> dict[str, Any]:
    """A fit as the API and the CLI show it (``status`` ``never_fitted`` before the first fit)."""
    if fit is None:
        return {"status": "never_fitted", "message": "The models have not been fitted yet.", "bgnbd": None,
                "gamma_gamma": None}  # fmt: skip
    bgnbd = {**fit.bgnbd, "time_unit": fit.time_unit, "as_of": fit.as_of.isoformat()} if fit.bgnbd else None
    return {
        "status": fit.status, "message": fit.message, "fitted_at": fit.fitted_at.isoformat(),
        "customers": fit.customers, "repeat_buyers": fit.repeat_buyers,
        "bgnbd": bgnbd, "gamma_gamma": dict(fit.gamma_gamma) if fit.gamma_gamma else None,
    }  # fmt: skip


def traits_of(session: Session, profile_id: str) -> ComputedTraits | None:
    """The computed traits of one profile (None: no purchase yet)."""
    return session.get(ComputedTraits, profile_id)


def segment_sizes(session: Session) -> dict[str, int]:
    """How many buyers are in each RFM segment."""
    query = select(ComputedTraits.rfm_segment, func.count()).group_by(col(ComputedTraits.rfm_segment))
    return {segment: count for segment, count in session.exec(query) if segment}
