"""Customers' messages in webhooks: InboundMessages with stable ids, and opt-out words."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from pydantic import SecretStr
from tessera_whatsapp.channel import WhatsAppChannel, WhatsAppConfig
from tessera_whatsapp.inbound import fold, is_opt_out
from tessera_whatsapp.sandbox import FakeWhatsApp
from whatsapp_serving import serve

from core.plugin_api import ChannelContext, WebhookRequest, WebhookResponse

CONFIG = WhatsAppConfig(
    phone_number_id="106540352242922", business_account_id="102290129340398",
    access_token=SecretStr("EAAG-token"), app_secret=SecretStr("app-secret"),
    webhook_verify_token=SecretStr("verify"),
)  # fmt: skip
# The built-in words plus the tenant's own.
CONFIG.opt_out_words += ", Désinscription, basta ya"
FAKE = FakeWhatsApp(app_secret="app-secret")
WA = "16505551234"
REPLIED_TO = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJFNjk2OTMwNEZCQjhGMzUyQUYA"


def post(
    payload: dict[str, Any], secret: str | None = None, config: WhatsAppConfig = CONFIG
) -> WebhookResponse:
    """POST a notification signed like Meta's to the channel."""
    raw, headers = FAKE.signed(payload, secret)
    ctx = ChannelContext(tenant="t", config=config, sandbox=False, sandbox_url="", public_url="https://x")
    return WhatsAppChannel().handle_webhook(ctx, WebhookRequest("POST", headers, {}, raw))


def test_capabilities_name_the_inbound_event() -> None:
    """Messages are recorded as "WhatsApp Message Received"; the plugin paces itself."""
    capabilities = WhatsAppChannel.capabilities
    assert capabilities.inbound_event == "WhatsApp Message Received"
    assert capabilities.rate_limit_per_second is None


def test_text_message_becomes_an_inbound_message() -> None:
    """wamid, whatsapp_id and phone, the time, type, text and the contact's name."""
    payload = FAKE.message_payload(WA, {"type": "text", "text": {"body": "¿Hay en otro color? 👍"}}, "Zoë",
                                   at=1749416383)  # fmt: skip
    response = post(payload)
    assert response.status_code == 200 and response.events == []
    (message,) = response.inbound
    assert message.message_id == payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    assert message.identifiers == {"whatsapp_id": WA, "phone": "+" + WA}
    assert message.occurred_at == datetime.fromtimestamp(1749416383, tz=UTC)
    assert message.properties == {"type": "text", "text": "¿Hay en otro color? 👍", "profile_name": "Zoë"}
    assert message.opt_out is False


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"type": "button", "button": {"payload": "Unsubscribe", "text": "Unsubscribe"}},
         {"button_payload": "Unsubscribe", "button_text": "Unsubscribe"}),
        ({"type": "interactive", "interactive": {"type": "button_reply",
                                                 "button_reply": {"id": "cancel-button", "title": "Cancel"}}},
         {"reply_type": "button_reply", "reply_id": "cancel-button", "text": "Cancel"}),
        ({"type": "interactive", "interactive": {"type": "list_reply", "list_reply": {
            "id": "priority_express", "title": "Priority Mail Express", "description": "Next Day"}}},
         {"reply_type": "list_reply", "reply_id": "priority_express", "text": "Priority Mail Express"}),
        ({"type": "image", "image": {"caption": "Taj Mahal", "mime_type": "image/jpeg", "id": "1003383421387256"}},
         {"media_id": "1003383421387256", "mime_type": "image/jpeg", "text": "Taj Mahal"}),
        ({"type": "location", "location": {"latitude": 37.44, "longitude": -122.16, "name": "Philz Coffee"}},
         {"location_latitude": 37.44, "location_longitude": -122.16, "location_name": "Philz Coffee"}),
        ({"type": "reaction", "reaction": {"message_id": REPLIED_TO, "emoji": "👍"}},
         {"reaction": "👍", "reacted_to": REPLIED_TO}),
        ({"type": "unsupported", "errors": [{"code": 131051}]}, {}),
    ],
)  # fmt: skip
def test_other_message_types(message: dict[str, Any], expected: dict[str, Any]) -> None:
    """Replies, media, locations, reactions and unsupported types keep what they say and what they answer."""
    context = {"from": "15550783881", "id": REPLIED_TO}
    (found,) = post(FAKE.message_payload(WA, {**message, "context": context})).inbound
    assert found.properties == {"type": message["type"], **expected, "profile_name": "Customer",
                                "in_reply_to": REPLIED_TO}  # fmt: skip
    assert found.identifiers["whatsapp_id"] == WA
    assert found.opt_out is (message["type"] == "button")  # Meta's example button says "Unsubscribe"


def test_system_messages_and_statuses_are_no_customer_messages() -> None:
    """A number-change notice is not the customer writing; statuses stay delivery events."""
    system = {"type": "system", "system": {"body": "User changed number", "type": "user_changed_number"}}
    assert post(FAKE.message_payload(WA, system)).inbound == []
    response = post(FAKE.status_payload("wamid.A", "read", WA))
    assert response.inbound == [] and [e.status for e in response.events] == ["read"]


@pytest.mark.parametrize(
    ("text", "opts_out"),
    [
        ("STOP", True), ("stop", True), ("  Stop!  ", True), ("STOP.", True), ("¡Stop!", True),
        ("unsubscribe", True), ("Arrêt", True), ("ARRET", True), ("arrêt.", True), ("Stopp", True),
        ("baja", True), ("PARAR", True), ("annulla", True), ("Abmelden", True),
        ("désinscription", True), ("DESINSCRIPTION", True), ("Basta   ya", True),  # the tenant's own words
        ("Please stop sending me these", False), ("stop it now", False), ("STOPPED", False),
        ("Don't stop", False), ("non-stop", False), ("", False), ("👍", False), ("basta", True),
    ],
)  # fmt: skip
def test_opt_out_words_only_as_the_whole_text(text: str, opts_out: bool) -> None:
    """The whole text, any case or accents, blanks and punctuation around ignored; not inside a sentence."""
    (found,) = post(FAKE.inbound_payload(WA, text)).inbound if text else [None]
    if found is None:
        assert not is_opt_out([text], CONFIG.opt_out_list())
        return
    assert found.opt_out is opts_out


def test_quick_reply_buttons_opt_out_by_payload_or_text() -> None:
    """Meta's marketing "Stop promotions" button, or a button whose payload is an opt-out word."""
    stop = {"type": "button", "button": {"payload": "Stop promotions", "text": "Stop promotions"}}
    by_payload = {"type": "button", "button": {"payload": "UNSUBSCRIBE", "text": "Not for me"}}
    keep = {"type": "button", "button": {"payload": "MORE_INFO", "text": "Tell me more"}}
    results = [post(FAKE.message_payload(WA, m)).inbound[0].opt_out for m in (stop, by_payload, keep)]
    assert results == [True, True, False]


def test_defaults_cover_several_languages_and_stop_always_counts() -> None:
    """The default words hold STOP, ARRÊT, STOPP, BAJA...; an emptied list still honours STOP."""
    only_stop = CONFIG.model_copy(update={"opt_out_words": "STOP"})
    built_in = WhatsAppConfig.model_fields["opt_out_words"].get_default(call_default_factory=True)
    for word in ["STOP", "UNSUBSCRIBE", "ARRÊT", "STOPP", "BAJA", "PARAR", "ANNULLA", "ABMELDEN"]:
        assert word in built_in
    assert is_opt_out(["stop"], []) and only_stop.opt_out_list() == ["STOP"]
    assert post(FAKE.inbound_payload(WA, "Stop!"), config=only_stop).inbound[0].opt_out
    assert not post(FAKE.inbound_payload(WA, "baja"), config=only_stop).inbound[0].opt_out
    assert fold("  Ärgerlich!! ") == "argerlich"


def test_replayed_webhook_gives_the_same_ids_and_events() -> None:
    """Meta retries: the same statuses and messages twice give identical events and message ids."""
    statuses = FAKE.status_payload("wamid.B", "delivered", WA)
    message = FAKE.inbound_payload(WA, "STOP")
    value = statuses["entry"][0]["changes"][0]["value"]
    value.update({k: v for k, v in message["entry"][0]["changes"][0]["value"].items() if k != "metadata"})
    first, second = post(statuses), post(statuses)
    assert first.events == second.events and first.inbound == second.inbound
    assert [m.message_id for m in first.inbound] == [m.message_id for m in second.inbound]
    assert first.inbound[0].message_id.startswith("wamid.") and first.inbound[0].opt_out
    assert [e.provider_id for e in first.events] == ["wamid.B"]


def test_bad_signature_reports_no_messages() -> None:
    """A wrong secret: 403 and neither events nor inbound messages."""
    response = post(FAKE.inbound_payload(WA, "STOP"), secret="not-the-app-secret")
    assert (response.status_code, response.events, response.inbound) == (403, [], [])


def test_the_fake_posts_any_customer_message_signed() -> None:
    """The fake's webhook control sends a quick-reply button message a receiver reads as an opt-out."""
    received: list[WebhookResponse] = []
    receiver = FastAPI()

    @receiver.post("/hook")
    async def hook(request: Request) -> Response:
        ctx = ChannelContext(tenant="t", config=CONFIG, sandbox=False, sandbox_url="", public_url="https://x")
        raw = WebhookRequest("POST", dict(request.headers), {}, await request.body())
        received.append(WhatsAppChannel().handle_webhook(ctx, raw))
        return Response(received[-1].body, status_code=received[-1].status_code)

    fake = FakeWhatsApp(app_secret="app-secret")
    button = {"type": "button", "button": {"payload": "Stop promotions", "text": "Stop promotions"}}
    with serve(receiver) as receiver_url, serve(fake.app) as fake_url:
        answer = httpx.post(fake_url + "/_sandbox/webhook", json={"url": receiver_url + "/hook", "from": WA,
                                                                 "message": button})  # fmt: skip
    assert answer.json()["status_code"] == 200
    (message,) = received[0].inbound
    assert message.opt_out and message.properties["button_payload"] == "Stop promotions"


def test_odd_messages_are_skipped_or_read_without_failing_the_webhook() -> None:
    """No id, an id too long to store, a non-digit sender: skipped; no ``from``: the only contact's wa_id."""
    payload = FAKE.message_payload(WA, {"type": "text", "text": {"body": "hi"}, "context": "garbage"})
    messages = payload["entry"][0]["changes"][0]["value"]["messages"]
    good = dict(messages[0])
    del good["from"]
    messages[:] = [{**good, "id": ""}, {**good, "id": "wamid." + "x" * 200}, {**good, "from": "abc"}, good]
    response = post(payload)
    assert response.status_code == 200
    (message,) = response.inbound
    assert message.identifiers["whatsapp_id"] == WA and "in_reply_to" not in message.properties
