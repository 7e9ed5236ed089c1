"""A profile's messages (every delivery, whatever sent it), for the 360 view."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from core.campaigns.models import Campaign
from core.delivery.models import Delivery
from core.journeys.models import Journey


@dataclass(frozen=True)
class SentMessage:
    """One delivery to the profile and where it came from (``source``: a campaign, a journey step)."""

    delivery: Delivery
    source: str
    link: str | None  # the campaign's or journey's page, relative to the tenant


def messages_of(session: Session, profile_id: str, limit: int = 20) -> list[SentMessage]:
    """The profile's latest deliveries, newest first, with where each came from."""
    query = select(Delivery).where(Delivery.profile_id == profile_id)
    rows = list(session.exec(query.order_by(col(Delivery.id).desc()).limit(limit)))
    campaign_ids = {r.campaign_id for r in rows if r.campaign_id is not None}
    journey_ids = {r.journey_id for r in rows if r.journey_id is not None}
    campaigns = dict(
        session.exec(select(Campaign.id, Campaign.name).where(col(Campaign.id).in_(campaign_ids))).all()
    )
    journeys = dict(
        session.exec(select(Journey.id, Journey.name).where(col(Journey.id).in_(journey_ids))).all()
    )
    found = []
    for row in rows:
        if row.journey_id is not None:
            name = journeys.get(row.journey_id, f"journey {row.journey_id}")
            found.append(SentMessage(row, f"{name} · {row.step}", f"journeys/{row.journey_id}"))
        elif row.campaign_id is not None:
            name = campaigns.get(row.campaign_id, f"campaign {row.campaign_id}")
            found.append(
                SentMessage(row, f"{name}{' (test)' if row.test else ''}", f"campaigns/{row.campaign_id}")
            )
        else:
            found.append(SentMessage(row, "—", None))
    return found
