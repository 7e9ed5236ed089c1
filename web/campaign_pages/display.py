"""How campaigns read on the pages: times in the tenant's zone, status badges, the list's figures."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session

from core.campaigns.models import Campaign, CampaignStatus
from core.reporting.report import campaign_totals
from web.campaign_pages.form import as_utc

BADGES = {
    CampaignStatus.draft: "",
    CampaignStatus.scheduled: "warn",
    CampaignStatus.launching: "warn",
    CampaignStatus.sending: "warn",
    CampaignStatus.completed: "ok",
    CampaignStatus.cancelled: "error",
}
# While a campaign is in these states its report changes: the page polls it.
LIVE = (CampaignStatus.launching, CampaignStatus.sending)


def local(moment: datetime | None, zone: str) -> str:
    """A stored time as the tenant reads it (``2026-05-04 09:30``), or an empty text."""
    if moment is None:
        return ""
    return as_utc(moment).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def when(campaign: Campaign, zone: str) -> str:
    """The moment that matters for the campaign's state: when it goes, went, or was stopped."""
    if campaign.status == CampaignStatus.scheduled:
        return f"goes {local(campaign.scheduled_at, zone)}"
    if campaign.launched_at is not None:
        return f"launched {local(campaign.launched_at, zone)}"
    if campaign.scheduled_at is not None:
        return f"planned for {local(campaign.scheduled_at, zone)}"
    return ""


@dataclass(frozen=True)
class Figures:
    """How many of a campaign's deliveries were sent, out of all it wrote (test sends aside)."""

    sent: int = 0
    total: int = 0


def figures(session: Session, campaign_ids: Collection[int]) -> dict[int, Figures]:
    """Sent and total deliveries of many campaigns (the report's own counts, in one query)."""
    return {
        cid: Figures(sent, total) for cid, (total, sent) in campaign_totals(session, campaign_ids).items()
    }
