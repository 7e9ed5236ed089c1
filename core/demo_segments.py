"""Sample segments for the demo tenant: the audiences a retail marketer starts with."""

from __future__ import annotations

from typing import Any

from core.db.engines import tenant_session
from core.segments.jobs import refresh_segments
from core.segments.service import active_segments, create_segment
from core.tenancy.models import Tenant

FRENCH = {"type": "trait", "key": "country", "op": "=", "value": "FR"}
DEMO_SEGMENTS: list[tuple[str, str, dict[str, Any]]] = [
    ("French customers", "Everyone whose country is France.", FRENCH),
    ("Best customers", "The RFM champions and loyal customers.",
     {"type": "computed", "key": "rfm_segment", "op": "in", "value": ["champions", "loyal_customers"]}),
    ("Spent 200 or more, no order in 60 days", "Big spenders drifting away: win them back.",
     {"all": [{"type": "computed", "key": "revenue", "op": ">=", "value": 200},
              {"type": "event", "event": "Order Completed", "performed": False, "window": {"last_days": 60}}]}),
    ("Birthday this week", "For a birthday offer.",
     {"type": "trait", "key": "birthday", "op": "birthday within days", "value": 7}),
    ("French, reachable on WhatsApp or push", "Consent given for at least one of the two.",
     {"all": [{"type": "segment", "segment": "French customers"},
              {"any": [{"type": "consent", "channel": "whatsapp"}, {"type": "consent", "channel": "push_fcm"}]}]}),
]  # fmt: skip


def _resolve(rule: Any, ids: dict[str, int]) -> Any:
    """The rule with segment names replaced by their ids."""
    if isinstance(rule, dict):
        if rule.get("type") == "segment":
            return {**rule, "segment": ids[rule["segment"]]}
        return {key: _resolve(value, ids) for key, value in rule.items()}
    return [_resolve(item, ids) for item in rule] if isinstance(rule, list) else rule


def seed_demo_segments(tenant: Tenant) -> None:
    """Create the sample segments that are missing, then evaluate every segment."""
    with tenant_session(tenant.database) as session:
        ids = {s.name: s.id for s in active_segments(session) if s.id is not None}
        for name, description, rule in DEMO_SEGMENTS:
            if name not in ids:
                segment = create_segment(session, name, _resolve(rule, ids), "demo", {}, description)
                assert segment.id is not None
                ids[name] = segment.id
        session.commit()
    refresh_segments(tenant.slug, {})
