"""What the core does with what a channel tells it beyond "sent": addresses gone, customers' own
messages (and their opt-outs), sends that must wait for a reply window, and opens reported by apps.

The recording channel (a pip-installed test plugin using only the public plugin API) reports all of
these; the core's side is what is checked here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from sqlmodel import select

from core.campaigns import service as campaigns
from core.consent.service import current
from core.db.engines import control_session
from core.delivery.links import open_url
from core.delivery.models import Delivery, DeliveryState
from core.ingest.models import Event
from core.internal_events.models import InternalEvent
from core.plugins import get_host
from core.profiles.jobs import process_events
from core.profiles.models import Identity
from core.tenancy.plugin_settings import save_channel_config
from core.tenancy.tenants import get_tenant
from tests.delivery.conftest import CHANNEL, TENANT
from tests.fakes.provider import DEFAULT_API_KEY, sign_webhook
from tests.journeys.conftest import customers, definition, entry_of, make_journey, path, send_step, track
from tests.support import bearer

SECRET = "s3cret"
INBOUND = "Recording Message Received"


def _launch(shop, **variant: object) -> int:
    body = {"variants": {"en": {"body": "Hello {{ traits.first_name }}", **variant}}, "fallback": "en"}
    segment = shop.segment(name=f"Everyone {datetime.now(UTC).timestamp()}")
    data = campaigns.CampaignIn(name=f"Send {segment}", segment_id=segment, channel=CHANNEL, content=body)
    campaign = campaigns.create_campaign(shop.session, shop.tenant, shop.scope(), data, "marketer")
    campaigns.launch(shop.session, shop.tenant, shop.scope(), campaign, "marketer")
    shop.session.commit()
    shop.run_jobs()
    assert campaign.id is not None
    return campaign.id


def _deliveries(shop, campaign_id: int) -> list[Delivery]:
    shop.session.expire_all()
    query = select(Delivery).where(Delivery.campaign_id == campaign_id).order_by(Delivery.id)
    return list(shop.session.exec(query))


def _with_webhook_secret(shop) -> None:
    with control_session() as control:
        values = {"endpoint": shop.provider.url, "api_key": DEFAULT_API_KEY, "webhook_secret": SECRET}
        save_channel_config(control, get_tenant(control, TENANT), get_host(), CHANNEL, values)
        control.commit()


def _post_inbound(client, *messages: dict[str, str]) -> int:
    body = json.dumps({"inbound": list(messages)}).encode()
    headers = {"X-Recording-Signature": sign_webhook(body, SECRET), "Content-Type": "application/json"}
    return client.post(f"/webhooks/{TENANT}/{CHANNEL}", content=body, headers=headers).status_code


def _reply(message_id: str, sender: str, text: str = "Hi!", at: datetime | None = None) -> dict[str, str]:
    return {"id": message_id, "from": sender, "text": text, "at": (at or datetime.now(UTC)).isoformat()}


def test_an_address_the_provider_calls_gone_is_never_sent_to_again_until_an_event_brings_it_back(
    shop,
) -> None:
    (gone_id, kept_id) = shop.customers(2)
    shop.provider.reject("c0@example.com", code="recipient_gone")
    first = _deliveries(shop, _launch(shop))
    assert {(d.profile_id, d.state, d.reason) for d in first} == {
        (gone_id, DeliveryState.failed, "recipient_gone"), (kept_id, DeliveryState.sent, None)
    }  # fmt: skip
    identity = shop.session.exec(select(Identity).where(Identity.value == "c0@example.com")).one()
    assert identity.retired_at is not None and identity.profile_id == gone_id  # it still identifies them
    with shop.installation.client() as client:
        shown = client.get(f"/api/v1/profiles/{gone_id}", headers=bearer(shop.token)).json()["identities"]
    assert [i.get("retired_at") is not None for i in shown if i["value"] == "c0@example.com"] == [True]

    attempts = shop.provider.attempts_for("c0@example.com")
    second = {d.profile_id: d for d in _deliveries(shop, _launch(shop))}
    assert second[gone_id].state == DeliveryState.suppressed and second[gone_id].reason == "no_address"
    assert second[kept_id].state == DeliveryState.sent
    assert shop.provider.attempts_for("c0@example.com") == attempts

    shop.provider.reset()
    shop.customers(1)  # c0 identifies again with the same email: the address is live again
    third = {d.profile_id: d for d in _deliveries(shop, _launch(shop))}
    assert third[gone_id].state == DeliveryState.sent


def test_a_customers_message_becomes_an_event_on_their_profile_and_a_replay_adds_nothing(shop) -> None:
    (profile_id,) = shop.customers(1)
    _with_webhook_secret(shop)
    with shop.installation.client() as client:
        assert _post_inbound(client, _reply("in-1", "c0@example.com", "Where is my order?")) == 200
        assert _post_inbound(client, _reply("in-1", "c0@example.com", "Where is my order?")) == 200
        assert _post_inbound(client, _reply("in-2", "new@example.com")) == 200
        forged = client.post(f"/webhooks/{TENANT}/{CHANNEL}", content=b'{"inbound": []}',
                             headers={"X-Recording-Signature": "sha256=00"})  # fmt: skip
        assert forged.status_code == 401
    process_events(TENANT, {})
    shop.session.expire_all()
    events = shop.session.exec(select(Event).where(Event.event == INBOUND).order_by(Event.id)).all()
    assert [(e.profile_id == profile_id, e.properties["text"]) for e in events] == [
        (True, "Where is my order?"), (False, "Hi!")
    ]  # fmt: skip
    assert events[1].profile_id  # an unknown sender gets a profile of their own
    assert all(e.properties["channel"] == CHANNEL for e in events)


def test_stop_withdraws_the_channels_consent_and_the_next_campaign_skips_them(shop) -> None:
    (profile_id,) = shop.customers(1)
    _with_webhook_secret(shop)
    with shop.installation.client() as client:
        assert _post_inbound(client, _reply("in-stop", "c0@example.com", " stop ")) == 200
    process_events(TENANT, {})
    shop.session.expire_all()
    consents = {(c.channel, c.purpose): c.granted for c in current(shop.session, profile_id)}
    assert consents[(CHANNEL, "marketing")] is False
    (delivery,) = _deliveries(shop, _launch(shop))
    assert delivery.state == DeliveryState.suppressed and delivery.reason == "no_consent"


def test_a_reply_only_message_is_suppressed_until_the_person_writes_and_then_goes(shop) -> None:
    (quiet, talker, long_ago) = shop.customers(3)
    _with_webhook_secret(shop)
    with shop.installation.client() as client:
        assert _post_inbound(client, _reply("in-a", "c1@example.com")) == 200
        old = datetime.now(UTC) - timedelta(hours=30)
        assert _post_inbound(client, _reply("in-b", "c2@example.com", at=old)) == 200
    process_events(TENANT, {})
    rows = {d.profile_id: d for d in _deliveries(shop, _launch(shop, reply_only="true"))}
    assert rows[talker].state == DeliveryState.sent
    for outside in (quiet, long_ago):
        assert (rows[outside].state, rows[outside].reason) == (DeliveryState.suppressed, "outside_window")
        assert "24 hours" in (rows[outside].detail or "")


def test_an_app_reports_an_open_once_through_the_address_the_channel_was_given(shop) -> None:
    (profile_id,) = shop.customers(1)
    (delivery,) = _deliveries(shop, _launch(shop))
    (message,) = shop.provider.messages
    given = message.metadata["open_url"]
    assert delivery.id is not None and given.endswith(open_url("", TENANT, delivery.id))
    address = urlsplit(given).path
    with shop.installation.client() as client:
        assert client.post(address).status_code == 204
        assert client.get(address).status_code == 204  # an app retrying: counted once
        assert client.post(address[:-3] + "abc").status_code == 404
        assert client.post(f"/o/elsewhere/{address.rsplit('/', 1)[1]}").status_code == 404
    shop.session.expire_all()
    opened = shop.session.get(Delivery, delivery.id)
    assert opened is not None and opened.opened_at is not None
    timeline = shop.session.exec(select(InternalEvent).where(InternalEvent.profile_id == profile_id)).all()
    assert [e.name for e in timeline].count("Message Opened") == 1


def test_a_reply_on_the_channel_ends_a_journeys_wait_for_it(shop) -> None:
    ann, bob = customers(shop, "ann", "bob")
    _with_webhook_secret(shop)
    spec = definition({"type": "event", "event": "Signed Up"}, {
        "s1": send_step("s2", body="Anything we can help with? Just reply."),
        "s2": {"type": "wait_for_event", "event": INBOUND, "timeout_seconds": 86400,
               "on_event": "thanks", "on_timeout": "nudge"},
        "thanks": send_step(body="Thanks for writing"), "nudge": send_step(body="Still there?"),
    })  # fmt: skip
    journey = make_journey(shop, spec)
    track(shop, "ann", "Signed Up")
    track(shop, "bob", "Signed Up")
    with shop.installation.client() as client:
        assert _post_inbound(client, _reply("in-ann", "ann@example.com", "Yes: my size?")) == 200
    process_events(TENANT, {})
    assert path(shop, entry_of(shop, journey.id, ann)) == [
        ("s1", "sent"),
        ("s2", "event"),
        ("thanks", "sent"),
    ]
    assert entry_of(shop, journey.id, bob).waiting_event == INBOUND


def test_links_in_text_are_tracked_but_a_field_declared_untracked_keeps_its_url(shop) -> None:
    shop.customers(1)
    _launch(shop, body="Sale: https://shop.example.com/sale", image_url="https://cdn.example.com/sale.png")
    (message,) = shop.provider.messages
    assert "/l/shop/" in message.body and "shop.example.com" not in message.body
    assert message.metadata["image_url"] == "https://cdn.example.com/sale.png"
