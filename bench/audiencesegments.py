"""The segments of the audiences benchmark: the three-condition count, and twenty varied rules.

Rules are the JSON marketers save (:mod:`core.segments.rules`), over the traits, events and
consents of :mod:`bench.audiencedata` and the computed traits of a refit. Only the standard
library: the benchmark process imports this without Tessera.
"""

from __future__ import annotations

from typing import Any

PREFIX = "bench: "

COUNT_RULE: dict[str, Any] = {
    "all": [
        {"type": "trait", "key": "country", "op": "=", "value": "FR"},
        {"type": "event", "event": "Product Viewed", "measure": "count", "op": ">=", "value": 2,
         "window": {"last_days": 30}},
        {"type": "computed", "key": "rfm_segment", "op": "in", "value": ["champions", "loyal_customers"]},
    ]
}  # fmt: skip
"""A trait, an event count in the last 30 days and a computed trait: the segment the issue counts."""


def _event(name: str, days: int | None = None, **test: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {"type": "event", "event": name, **test}
    return rule if days is None else {**rule, "window": {"last_days": days}}


def _trait(key: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"type": "trait", "key": key, "op": op, **({} if value is None else {"value": value})}


def _computed(key: str, op: str, value: Any) -> dict[str, Any]:
    return {"type": "computed", "key": key, "op": op, "value": value}


def _consent(channel: str) -> dict[str, Any]:
    return {"type": "consent", "channel": channel, "purpose": "marketing"}


SEGMENTS: dict[str, dict[str, Any]] = {
    "French buyers who viewed products lately": COUNT_RULE,
    "Team plan": _trait("plan", "=", "team"),
    "Champions": _computed("rfm_segment", "in", ["champions"]),
    "Likely churned": _computed("churn_risk", ">=", 0.8),
    "High predicted value": _computed("predicted_clv", ">=", 200),
    "Browsing this fortnight": _event("Product Viewed", 14, measure="count", op=">=", value=3),
    "Spent 150 in 90 days": _event(
        "Order Completed", 90, measure="sum", property="revenue", op=">=", value=150
    ),
    "Cart abandoners": {"all": [_event("Product Added", 7), _event("Order Completed", 7, performed=False)]},
    "Email engaged": {
        "all": [_event("Email Opened", 30, measure="count", op=">=", value=2), _consent("email")]
    },
    "WhatsApp in Spain and Italy": {"all": [_consent("whatsapp"), _trait("country", "in", ["ES", "IT"])]},
    "Birthday this week": _trait("birthday", "birthday within days", 7),
    "Signed up in the last 60 days": _trait("signed_up_at", "within last days", 60),
    "Pro users aged 25 to 34": {"all": [_trait("plan", "=", "pro"), _trait("age", "between", [25, 34])]},
    "Lapsed big spenders": {
        "all": [_computed("last_order_at", "more than days ago", 120), _computed("revenue", ">=", 150)]
    },
    "At risk": {
        "any": [
            _computed("rfm_segment", "in", ["at_risk", "cannot_lose_them"]),
            _computed("churn_risk", ">=", 0.9),
        ]
    },  # fmt: skip
    "High average order": _event("Order Completed", measure="avg", property="revenue", op=">=", value=90),
    "Searched for shoes": {
        "type": "event",
        "event": "Products Searched",
        "where": [{"key": "query", "op": "=", "value": "shoes"}],
        "window": {"last_days": 30},
    },  # fmt: skip
    "Repeat buyers in Britain and the US": {
        "all": [_computed("orders", ">=", 3), _trait("country", "in", ["GB", "US"])]
    },
    "Southern spenders without email consent": {
        "all": [
            {"any": [_trait("country", "=", "FR"), _trait("country", "=", "ES")]},
            {"not": _consent("email")},
            _computed("revenue", ">=", 80),
        ]
    },  # fmt: skip
    "Loyal, no email opened this month": {
        "all": [
            _computed("rfm_segment", "in", ["loyal_customers", "champions"]),
            {"not": _event("Email Opened", 30)},
        ]
    },  # fmt: skip
}
"""Twenty segments: traits, computed traits, event counts, sums and averages in windows, consent,
nested any and not."""

NEW_EVENTS = ("Product Viewed", "Product Added", "Email Opened", "Order Completed")
"""The event each sampled profile gets before its re-evaluation, in turn."""
