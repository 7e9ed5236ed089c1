"""A person's messages are in their export, and an erasure leaves their deliveries anonymous:
nothing personal is kept, yet the reports of past sends still add up."""

from __future__ import annotations

from sqlmodel import select

from core.campaigns import service as campaigns
from core.delivery.models import Delivery, LinkClick
from core.delivery.statuses import record_click
from core.privacy.service import erase_person, export_person
from core.reporting.report import report
from tests.delivery.conftest import CHANNEL, content


def test_deliveries_are_exported_then_anonymized_by_an_erasure(shop) -> None:
    erased, kept = shop.customers(2)
    segment = shop.segment()
    data = campaigns.CampaignIn(name="Links", segment_id=segment, channel=CHANNEL,
                                content=content("Hi {{ traits.first_name }}, see https://shop.example/me"))  # fmt: skip
    campaign = campaigns.create_campaign(shop.session, shop.tenant, shop.scope(), data, "marketer")
    campaigns.launch(shop.session, shop.tenant, shop.scope(), campaign, "marketer")
    shop.session.commit()
    shop.run_jobs()
    (mine,) = shop.session.exec(select(Delivery).where(Delivery.profile_id == erased)).all()
    assert mine.id is not None and record_click(shop.session, mine.id, 0) == "https://shop.example/me"
    shop.session.commit()

    exported = export_person(shop.session, erased)
    assert [d["address"] for d in exported["deliveries"]] == ["c0@example.com"]
    assert [c["url"] for c in exported["link_clicks"]] == ["https://shop.example/me"]

    before = report(shop.session, campaign_id=campaign.id)
    erase_person(shop.session, erased)
    shop.session.commit()
    shop.session.expire_all()
    after = report(shop.session, campaign_id=campaign.id)
    assert (
        (after.targeted, after.sent, after.clicked)
        == (before.targeted, before.sent, before.clicked)
        == (2, 2, 1)
    )
    rows = shop.session.exec(select(Delivery)).all()
    dumped = " ".join(str(r.model_dump()) for r in rows)
    assert erased not in dumped and "c0@example.com" not in dumped and "c1@example.com" in dumped
    assert shop.session.exec(select(LinkClick)).all() == []
    assert kept in dumped
