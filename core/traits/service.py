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

from collections import defaultdict
from collections.abc import Collection
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from core.db.base import utcnow
from core.db.bulk import delete_in, insert_rows
from core.traits.models import ComputedTraits, TraitFit
from core.traits.purchases import Purchase, purchases

if TYPE_CHECKING:
    from core.traits.summary import PurchaseSummary, TimeUnit

# numpy and scipy (core.traits.clv, .rfm, .summary) are imported where they are used: they add
# about half a second and 50 MiB to every process that starts, and only the workers compute.

UNIT: TimeUnit = "days"
PROPENSITY_DAYS = (30, 90)
CLV_DAYS = 365
TRAITS = ComputedTraits.__table__  # type: ignore[attr-defined]


def latest_fit(session: Session) -> TraitFit | None:
    """The most recent fit, if the tenant was ever fitted."""
    return session.exec(
        select(TraitFit).order_by(col(TraitFit.fitted_at).desc(), col(TraitFit.id).desc())
    ).first()


def _summary(bought: list[Purchase], end: datetime, zone: tzinfo) -> PurchaseSummary:
    from core.traits.summary import summarize_transactions

    local = ((p.profile_id, p.at.astimezone(zone), p.amount) for p in bought)
    return summarize_transactions(local, end.astimezone(zone), UNIT)


@dataclass(frozen=True, eq=False)
class History:
    """Every buyer's purchases up to ``end``, and their per-customer summary (read once, used twice)."""

    end: datetime
    bought: list[Purchase]
    summary: PurchaseSummary


def load_history(session: Session, end: datetime, zone: tzinfo = UTC) -> History:
    """The purchases up to ``end`` and their summary in the tenant's time zone."""
    bought = purchases(session, until=end)
    return History(end, bought, _summary(bought, end, zone))


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
    out: dict[str, Any] = {"churn_risk": none, "expected_purchases_30": none, "expected_purchases_90": none,
                           "predicted_clv": none}  # fmt: skip
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

    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=np.float64)]


def _by_profile(bought: list[Purchase]) -> defaultdict[str, list[Purchase]]:
    """Each buyer's orders, oldest first (``bought`` is in time order)."""
    orders: defaultdict[str, list[Purchase]] = defaultdict(list)
    for purchase in bought:
        orders[purchase.profile_id].append(purchase)
    return orders


def _measures(
    orders: dict[str, list[Purchase]], customers: tuple[str, ...], now: datetime, zone: tzinfo
) -> tuple[list[float], list[int], list[float]]:
    """Per buyer, in ``customers`` order: days since the last order, orders, revenue (what RFM scores)."""
    days = [_days_since(orders[c][-1].at, now, zone) for c in customers]
    counts = [len(orders[c]) for c in customers]
    revenue = [sum(p.amount for p in orders[c]) for c in customers]
    return days, counts, revenue


def _rows(
    orders: dict[str, list[Purchase]], summary: PurchaseSummary, now: datetime, zone: tzinfo,
    fit: TraitFit | None, scores: tuple[list[int], list[int], list[int]],
) -> list[dict[str, Any]]:  # fmt: skip
    from core.traits.rfm import rfm_segment

    predicted = _predictions(fit, summary)
    rows = []
    for i, profile_id in enumerate(summary.customers):
        mine = orders[profile_id]
        recency, frequency, monetary = scores[0][i], scores[1][i], scores[2][i]
        rows.append({
            "profile_id": profile_id, "orders": len(mine), "revenue": round(sum(p.amount for p in mine), 2),
            "first_order_at": mine[0].at, "last_order_at": mine[-1].at,
            "days_since_last_order": _days_since(mine[-1].at, now, zone),
            "rfm_recency": recency, "rfm_frequency": frequency, "rfm_monetary": monetary,
            "rfm_segment": rfm_segment(recency, frequency).value,
            **{name: values[i] for name, values in predicted.items()},
            "computed_at": now, "details": {"fit_id": fit.id if fit else None},
        })  # fmt: skip
    return rows


def _days_since(at: datetime, now: datetime, zone: tzinfo) -> float:
    return float((now.astimezone(zone).date() - at.astimezone(zone).date()).days)


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
    summary = history.summary
    orders = _by_profile(history.bought)
    days, counts, revenue = _measures(orders, summary.customers, now, zone)
    scored = rfm_scores(days, counts, revenue) if summary.customers else None
    scores = (
        (scored.recency.tolist(), scored.frequency.tolist(), scored.monetary.tolist())
        if scored
        else ([], [], [])
    )
    rows = _rows(orders, summary, now, zone, fit, scores)
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
    bought = purchases(session, profile_ids, until=now)
    summary = _summary(bought, now, zone)
    orders = _by_profile(bought)
    cuts = (fit.rfm_cuts if fit else None) or {}
    days, counts, revenue = _measures(orders, summary.customers, now, zone)
    scores = (
        [score_against(d, cuts.get("recency", []), higher_is_better=False) for d in days],
        [score_against(c, cuts.get("frequency", [])) for c in counts],
        [score_against(r, cuts.get("monetary", [])) for r in revenue],
    )
    rows = _rows(orders, summary, now, zone, fit, scores)
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
