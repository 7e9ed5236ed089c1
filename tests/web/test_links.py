"""Tracked links: the link a customer got in a message records the click and leads to the target.

A campaign with a link goes out through the recording channel to a local fake provider; the
tracked link is read from the message the provider received, and followed without signing in,
as a customer's browser does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from core.campaigns import service as campaigns
from core.db.engines import control_session, tenant_engine
from core.delivery.links import token_for
from core.delivery.models import Delivery, LinkClick
from core.ingest.service import accept
from core.internal_events.service import of_profile
from core.profiles.jobs import process_events
from core.profiles.service import find_by_identifier
from core.segments.service import create_segment, tenant_scope
from core.tenancy.tenants import get_tenant
from tests.fakes.provider import FakeProvider
from tests.plugins_host.packages import plugin_packages, recording_plugin
from tests.support import run_due_jobs, use_recording_channel

__all__ = ["plugin_packages", "recording_plugin"]

CHANNEL = "recording_channel"
TARGET = "https://shop.example/sale?utm_source=tessera"
TRACKED = re.compile(r"https?://[^/\s]+(/l/[a-z0-9_-]+/[A-Za-z0-9_-]+)")


def sent_campaign(slug: str, provider: FakeProvider, installation: Any) -> tuple[str, str]:
    """Tenant ``slug`` sends Ann a campaign with a link; (her profile id, the tracked path she got)."""
    created = installation.tenant(slug)
    use_recording_channel(slug, provider.url)
    with control_session() as control:
        tenant = get_tenant(control, slug)
        scope = tenant_scope(control, tenant)
    event = {
        "type": "identify",
        "userId": "ann",
        "traits": {"email": f"ann@{slug}.example", "consent": {CHANNEL: True}},
    }
    with Session(tenant_engine(created.tenant.database), expire_on_commit=False) as session:
        assert not accept(session, slug, [event]).rejected
        process_events(slug, {})
        profile_id = find_by_identifier(session, "user_id", "ann").id
        segment = create_segment(session, "Everyone", {"all": []}, "test", {})
        content = {"variants": {"en": {"body": f"Our sale starts now: {TARGET}."}}, "fallback": "en"}
        data = campaigns.CampaignIn(name="Sale", segment_id=segment.id or 0, channel=CHANNEL, content=content)
        campaign = campaigns.create_campaign(session, tenant, scope, data, "test")
        campaigns.launch(session, tenant, scope, campaign, "test")
        session.commit()
    before = len(provider.messages)
    run_due_jobs(slug, created.tenant.database)
    (message,) = provider.messages[before:]
    found = TRACKED.search(message.body)
    assert found and TARGET not in message.body, message.body
    return profile_id, found.group(1)


@pytest.fixture
def client(installation) -> Iterator[TestClient]:
    """A browser that is not signed in."""
    with installation.client() as browser:
        yield browser


def clicks(slug: str) -> list[LinkClick]:
    with control_session() as control:
        database = get_tenant(control, slug).database
    with Session(tenant_engine(database)) as session:
        return list(session.exec(select(LinkClick)))


def delivery_of(slug: str, profile_id: str) -> Delivery:
    with control_session() as control:
        database = get_tenant(control, slug).database
    with Session(tenant_engine(database)) as session:
        found = session.exec(select(Delivery).where(Delivery.profile_id == profile_id)).one()
        return found


def timeline(slug: str, profile_id: str) -> list[tuple[str, dict[str, Any]]]:
    with control_session() as control:
        database = get_tenant(control, slug).database
    with Session(tenant_engine(database)) as session:
        return [(e.name, e.properties) for e in of_profile(session, profile_id)]


def test_a_click_redirects_to_the_target_and_is_recorded_on_the_delivery_and_the_timeline(
    installation, recording_plugin, provider, client
) -> None:
    profile_id, path = sent_campaign("shop", provider, installation)
    assert delivery_of("shop", profile_id).clicked_at is None

    answer = client.get(path, follow_redirects=False)
    assert answer.status_code == 302 and answer.headers["location"] == TARGET
    delivery = delivery_of("shop", profile_id)
    first = delivery.clicked_at
    assert first is not None
    (click,) = clicks("shop")
    assert (click.delivery_id, click.profile_id, click.link, click.url) == (
        delivery.id,
        profile_id,
        0,
        TARGET,
    )
    events = [(name, props) for name, props in timeline("shop", profile_id) if name == "Message Link Clicked"]
    expected = {
        "delivery_id": delivery.id,
        "channel": CHANNEL,
        "campaign_id": delivery.campaign_id,
        "url": TARGET,
    }
    assert events == [("Message Link Clicked", expected)]

    again = client.get(path, follow_redirects=False)
    assert again.status_code == 302 and len(clicks("shop")) == 2  # every click counts...
    assert delivery_of("shop", profile_id).clicked_at == first  # ...the delivery keeps the first


def test_a_token_with_a_bad_signature_finds_nothing_and_records_nothing(
    installation, recording_plugin, provider, client
) -> None:
    profile_id, path = sent_campaign("shop", provider, installation)
    delivery_id = delivery_of("shop", profile_id).id
    assert delivery_id is not None
    forged = path[:-2] + ("AA" if not path.endswith("AA") else "BB")
    other_link = f"/l/shop/{token_for('shop', delivery_id, 0).replace('-0-', '-1-', 1)}"
    for bad in (
        forged,
        other_link,
        "/l/shop/not-a-token",
        "/l/shop/zz-0-",
        f"/l/nowhere/{path.rsplit('/', 1)[1]}",
    ):
        answer = client.get(bad, follow_redirects=False, headers={"Accept": "text/html"})
        assert answer.status_code == 404, bad
        assert "Link not found" in answer.text
    unknown = f"/l/shop/{token_for('shop', 999_999, 0)}"  # well signed, but no such delivery
    assert client.get(unknown, follow_redirects=False).status_code == 404
    assert clicks("shop") == [] and delivery_of("shop", profile_id).clicked_at is None
    assert "Message Link Clicked" not in [name for name, _ in timeline("shop", profile_id)]


def test_another_tenants_token_is_not_found(installation, recording_plugin, provider, client) -> None:
    shop_profile, shop_path = sent_campaign("shop", provider, installation)
    sport_profile, _ = sent_campaign("sport", provider, installation)
    token = shop_path.rsplit("/", 1)[1]
    answer = client.get(f"/l/sport/{token}", follow_redirects=False)
    assert answer.status_code == 404
    assert clicks("sport") == [] and clicks("shop") == []
    assert delivery_of("sport", sport_profile).clicked_at is None
    assert client.get(shop_path, follow_redirects=False).status_code == 302  # in its own tenant it works
