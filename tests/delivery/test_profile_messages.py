"""The 360 view lists a profile's messages, where each came from, and what the person did with them."""

from __future__ import annotations

from sqlmodel import select

from core.campaigns import service as campaigns
from core.delivery.models import Delivery
from core.delivery.statuses import record_click
from tests.delivery.conftest import CHANNEL, content
from tests.support import login


def test_the_360_view_shows_the_message_its_campaign_and_the_click(shop) -> None:
    (pid,) = shop.customers(1)
    data = campaigns.CampaignIn(name="Spring", segment_id=shop.segment(), channel=CHANNEL,
                                content=content("Hi, see https://shop.example/spring"))  # fmt: skip
    campaign = campaigns.create_campaign(shop.session, shop.tenant, shop.scope(), data, "marketer")
    campaigns.launch(shop.session, shop.tenant, shop.scope(), campaign, "marketer")
    shop.session.commit()
    shop.run_jobs()
    (row,) = shop.session.exec(select(Delivery)).all()
    assert row.id is not None
    record_click(shop.session, row.id, 0)
    shop.session.commit()
    with shop.installation.client() as client:
        login(client, "admin@shop.test")
        page = client.get(f"/t/shop/profiles/{pid}").text
    card = page.split('id="messages"')[1].split("</section>")[0]
    assert f'data-delivery="{row.id}"' in card and "Spring" in card and f"campaigns/{campaign.id}" in card
    assert ">sent<" in card and "Message Link Clicked" in card and "https://shop.example/spring" in card


def test_the_reports_page_adds_up_every_send_per_channel(shop) -> None:
    shop.customers(3)
    shop.provider.reject("c2@example.com")
    data = campaigns.CampaignIn(name="Autumn", segment_id=shop.segment(), channel=CHANNEL, content=content())
    campaign = campaigns.create_campaign(shop.session, shop.tenant, shop.scope(), data, "marketer")
    campaigns.launch(shop.session, shop.tenant, shop.scope(), campaign, "marketer")
    shop.session.commit()
    shop.run_jobs()
    with shop.installation.client() as client:
        login(client, "admin@shop.test")
        page = client.get("/t/shop/reports").text
    row = page.split(f'data-channel="{CHANNEL}"')[1].split("</tr>")[0]
    cells = [cell.split(">")[-1] for cell in row.split("</td>")[:-1]]
    assert cells[0] == "Recording channel" and cells[1:7] == ["3", "0", "2", "0", "1", "0"]
    assert 'data-key="sent"' in page.split('id="per-channel"')[0]
