"""What happens to a delivery after it is sent: provider statuses, link clicks, conversions.

Each lifecycle moment sets its timestamp on the delivery once (the first report of it wins) and,
for what the customer did (opened, clicked, installed, removed), adds an internal event to the
profile's timeline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from core.db.base import utcnow
from core.delivery.models import Delivery, DeliveryState, LinkClick
from core.internal_events.service import emit_many
from core.plugin_api import ChannelEvent, DeliveryStatus

DELIVERY = Delivery.__table__  # type: ignore[attr-defined]
MOMENTS = {
    DeliveryStatus.delivered: "delivered_at",
    DeliveryStatus.read: "opened_at",
    DeliveryStatus.clicked: "clicked_at",
    DeliveryStatus.installed: "installed_at",
    DeliveryStatus.removed: "removed_at",
}
# What the customer did, as it reads on the timeline.
TIMELINE = {
    DeliveryStatus.read: "Message Opened",
    DeliveryStatus.clicked: "Message Link Clicked",
    DeliveryStatus.installed: "Pass Installed",
    DeliveryStatus.removed: "Pass Removed",
}


def _find(session: Session, channel: str, event: ChannelEvent) -> Delivery | None:
    if event.delivery_id and event.delivery_id.isdigit():
        found = session.get(Delivery, int(event.delivery_id))
        if found is not None and found.channel == channel:
            return found
    if event.provider_id:
        query = select(Delivery).where(Delivery.channel == channel, Delivery.provider_id == event.provider_id)
        return session.exec(query).first()
    return None


def apply_channel_events(session: Session, channel: str, events: Iterable[ChannelEvent]) -> int:
    """Record what a provider reported about ``channel`` deliveries; how many matched one.

    An event for an unknown delivery is ignored (the provider may report messages sent before
    Tessera, or by another system). The caller commits.
    """
    matched = 0
    timeline = []
    for event in events:
        delivery = _find(session, channel, event)
        if delivery is None:
            continue
        matched += 1
        at = event.occurred_at or utcnow()
        if event.status == DeliveryStatus.failed:
            # A bounce after sending: the message never arrived.
            delivery.state = DeliveryState.failed
            delivery.reason = event.reason_code or "provider_failed"
            delivery.failed_at = delivery.failed_at or at
        elif event.status in MOMENTS and getattr(delivery, MOMENTS[event.status]) is None:
            setattr(delivery, MOMENTS[event.status], at)
            if event.status in TIMELINE:
                timeline.append(_timeline_row(delivery, TIMELINE[event.status], at))
        session.add(delivery)
    if timeline:
        session.flush()
        emit_many(session, timeline)
    return matched


def _timeline_row(delivery: Delivery, name: str, at: datetime, **extra: object) -> dict[str, object]:
    properties = {"delivery_id": delivery.id, "channel": delivery.channel, "campaign_id": delivery.campaign_id,
                  "journey_id": delivery.journey_id, "step": delivery.step, **extra}  # fmt: skip
    return {"name": name, "profile_id": delivery.profile_id, "occurred_at": at,
            "properties": {k: v for k, v in properties.items() if v is not None}}  # fmt: skip


def record_click(session: Session, delivery_id: int, index: int) -> str | None:
    """Record a click on link ``index`` of a delivery; the link's target, or None if unknown."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is None or not delivery.links or not 0 <= index < len(delivery.links):
        return None
    url = delivery.links[index]
    now = utcnow()
    session.add(
        LinkClick(delivery_id=delivery_id, profile_id=delivery.profile_id, link=index, url=url, at=now)
    )
    if delivery.clicked_at is None:
        delivery.clicked_at = now
        session.add(delivery)
    session.flush()
    emit_many(session, [_timeline_row(delivery, TIMELINE[DeliveryStatus.clicked], now, url=url)])
    return url


def record_conversions(
    session: Session,
    campaign_goals: dict[str, list[tuple[int, int]]],
    events: Sequence[tuple[str, str, datetime]],
) -> int:
    """Mark campaign deliveries converted by goal events; how many were marked.

    ``campaign_goals`` maps an event name to the (campaign id, days) whose goal it is; ``events``
    are (name, profile id, time). A delivery converts when its goal event happens within the
    goal's days after it was sent; only the first conversion counts.
    """
    marked = 0
    connection = session.connection()
    for name, profile_id, at in events:
        for campaign_id, days in campaign_goals.get(name, []):
            result = connection.execute(
                sa.update(DELIVERY)
                .where(
                    DELIVERY.c.campaign_id == campaign_id,
                    DELIVERY.c.profile_id == profile_id,
                    DELIVERY.c.test.is_(False),
                    DELIVERY.c.converted_at.is_(None),
                    DELIVERY.c.sent_at <= at,
                    DELIVERY.c.sent_at >= at - timedelta(days=days),
                )
                .values(converted_at=at)
            )
            marked += result.rowcount or 0
    return marked
