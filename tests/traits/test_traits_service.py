"""Computed traits from real events: orders in, refunds out, models fitted, buyers scored at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from core.db.engines import tenant_engine
from core.ingest.service import accept
from core.profiles.jobs import process_events
from core.profiles.service import find_by_identifier
from core.traits.jobs import refit
from core.traits.service import latest_fit, traits_of

DATA = Path(__file__).parent / "data"
TENANT = "shop"


def order(user: str, order_id: str, day: str, total: float | None = None, **properties: Any) -> dict:
    if total is not None:
        properties["total"] = total
    return {"type": "track", "userId": user, "event": "Order Completed", "timestamp": f"{day}T12:00:00Z",
            "messageId": f"{order_id}-{day}-{total}", "properties": {"order_id": order_id, **properties}}  # fmt: skip


def refund(user: str, order_id: str, day: str, **properties: Any) -> dict:
    return {"type": "track", "userId": user, "event": "Order Refunded", "timestamp": f"{day}T13:00:00Z",
            "messageId": f"refund-{order_id}-{day}", "properties": {"order_id": order_id, **properties}}  # fmt: skip


@pytest.fixture
def shop(installation) -> Session:
    database = installation.tenant(TENANT).tenant.database
    with Session(tenant_engine(database), expire_on_commit=False) as session:
        yield session


def send(session: Session, events: list[dict]) -> None:
    for start in range(0, len(events), 500):
        result = accept(session, TENANT, events[start : start + 500])
        assert not result.rejected, result.rejected[:3]
    process_events(TENANT, {})
    session.expire_all()


def buyer(session: Session, user: str):
    return traits_of(session, find_by_identifier(session, "user_id", user).id)


def test_orders_less_refunds_show_on_the_buyer_right_after_processing(shop: Session) -> None:
    send(shop, [
        order("ann", "A1", "2026-01-05", 100.0),
        order("ann", "A1", "2026-01-05", 100.0),  # the same order sent twice counts once
        order("ann", "A2", "2026-02-10", revenue=40.0, total=45.0),  # revenue wins over total
        order("ann", "A3", "2026-03-01", 30.0),
        refund("ann", "A3", "2026-03-02"),  # refunded in full: gone
        order("ann", "A4", "2026-03-05", 50.0),
        refund("ann", "A4", "2026-03-06", total=20.0),  # partly refunded
        {"type": "track", "userId": "bob", "event": "Product Viewed", "timestamp": "2026-01-01T00:00:00Z"},
    ])  # fmt: skip
    ann = buyer(shop, "ann")
    assert (ann.orders, ann.revenue) == (3, 170.0)
    assert ann.first_order_at == datetime(2026, 1, 5, 12, tzinfo=UTC)
    assert ann.last_order_at == datetime(2026, 3, 5, 12, tzinfo=UTC)
    assert 1 <= ann.rfm_recency <= 5 and ann.rfm_segment
    assert ann.churn_risk is None and ann.predicted_clv is None  # no model fitted yet
    assert buyer(shop, "bob") is None  # browsing is not buying


def test_a_tenant_with_little_history_gets_not_enough_history_not_nonsense(shop: Session) -> None:
    send(shop, [order(f"u{i}", f"O{i}", "2026-01-05", 10.0) for i in range(5)])
    fit, buyers = refit(TENANT)
    assert buyers == 5
    assert fit.status == "not_enough_history" and "purchase model" in fit.message
    assert fit.bgnbd is None and fit.gamma_gamma is None
    shop.expire_all()
    assert buyer(shop, "u1").expected_purchases_30 is None


def cdnow_orders() -> list[dict]:
    """CDNOW's sample (the BG/NBD paper's data): customer, panel id, date, CDs, dollars per line."""
    events = []
    with (DATA / "CDNOW_sample.txt").open() as file:
        for number, line in enumerate(file):
            _, panel_id, day, _, dollars = line.split()
            events.append(order(f"cdnow-{int(panel_id)}", f"L{number}", f"{day[:4]}-{day[4:6]}-{day[6:]}",
                                float(dollars)))  # fmt: skip
    return events


def test_the_fit_through_the_product_reproduces_the_papers_cdnow_parameters(shop: Session) -> None:
    send(shop, cdnow_orders())
    # The papers' calibration period ends on 30 September 1997; time is in days here (alpha x 7).
    fit, _ = refit(TENANT, as_of=datetime(1997, 9, 30, 23, 59, tzinfo=UTC))
    assert fit.status == "fitted" and fit.customers == 2357 and fit.time_unit == "days"
    bgnbd, spend = fit.bgnbd, fit.gamma_gamma
    assert (bgnbd["r"], bgnbd["alpha"] / 7, bgnbd["a"], bgnbd["b"]) == pytest.approx(
        (0.243, 4.414, 0.793, 2.426), rel=0.005
    )
    assert (spend["p"], spend["q"], spend["gamma"]) == pytest.approx((6.25, 3.74, 15.44), rel=0.005)
    shop.expire_all()
    assert latest_fit(shop).id == fit.id and fit.rfm_cuts and len(fit.rfm_cuts["recency"]) == 4


def test_a_new_order_rescores_the_buyer_at_once_against_the_tenants_cuts(shop: Session) -> None:
    send(shop, [order(f"u{i}", f"O{i}", f"2025-{1 + i % 12:02d}-10", 10.0 * (1 + i)) for i in range(60)])
    refit(TENANT)
    shop.expire_all()
    computed_before = buyer(shop, "u0").computed_at
    just_now = order("u0", "NEW", "2000-01-01", 5000.0)
    just_now["timestamp"] = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    send(shop, [just_now])
    after = buyer(shop, "u0")
    assert (after.orders, after.revenue) == (2, 5010.0)
    assert after.days_since_last_order == 0 and after.rfm_recency == 5 and after.rfm_monetary == 5
    assert after.computed_at > computed_before
