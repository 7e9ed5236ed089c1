"""Meta's webhooks: verification handshake, X-Hub-Signature-256, statuses into ChannelEvents."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI, Request, Response
from pydantic import SecretStr
from tessera_whatsapp.channel import WhatsAppChannel, WhatsAppConfig
from tessera_whatsapp.sandbox import FakeWhatsApp
from whatsapp_serving import serve

from core.plugin_api import ChannelContext, ChannelEvent, DeliveryStatus, WebhookRequest

CONFIG = WhatsAppConfig(
    phone_number_id="106540352242922",
    business_account_id="102290129340398",
    access_token=SecretStr("EAAG-token"),
    app_secret=SecretStr("app-secret"),
    webhook_verify_token=SecretStr("s3cret-verify"),
)
FAKE = FakeWhatsApp(app_secret="app-secret")


def call(
    method: str, query: dict[str, str], config: WhatsAppConfig | None = CONFIG, body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, str, list[ChannelEvent]]:  # fmt: skip
    """Send one webhook request to the channel; return status, body and events."""
    ctx = ChannelContext(tenant="t", config=config, sandbox=False, sandbox_url="", public_url="https://x")
    response = WhatsAppChannel().handle_webhook(ctx, WebhookRequest(method, headers or {}, query, body))
    return response.status_code, response.body, response.events


def hub(mode: str = "subscribe", token: str = "s3cret-verify") -> dict[str, str]:
    """The query string Meta sends to verify a callback URL."""
    return {"hub.mode": mode, "hub.verify_token": token, "hub.challenge": "1158201444"}


def test_handshake_echoes_the_challenge() -> None:
    """Right mode and token: 200 with the raw challenge."""
    assert call("GET", hub())[:2] == (200, "1158201444")


def test_handshake_refuses_wrong_token_mode_or_missing_config() -> None:
    """Anything else is 403 and does not echo the challenge."""
    for query, config in [(hub(token="nope"), CONFIG), (hub(mode="unsubscribe"), CONFIG), (hub(), None)]:
        status, body, _ = call("GET", query, config)
        assert status == 403 and "1158201444" not in body
    assert call("GET", {}, CONFIG)[0] == 403


def test_signed_statuses_become_events() -> None:
    """delivered, read and failed (with its error code's reason) by provider_id."""
    for status, reason in [("sent", None), ("delivered", None), ("read", None), ("failed", "outside_window")]:
        payload = FAKE.status_payload(
            "wamid.A", status, "16505551234", 131047 if status == "failed" else None
        )
        raw, headers = FAKE.signed(payload)
        code, _, events = call("POST", {}, body=raw, headers=headers)
        (event,) = events
        assert code == 200 and (event.status, event.provider_id, event.reason_code) == (
            status,
            "wamid.A",
            reason,
        )
        assert event.address == "16505551234" and isinstance(event.occurred_at, datetime)
        assert event.occurred_at.tzinfo == UTC
    assert event.data["error_code"] == 131047


def test_bad_missing_or_tampered_signature_is_refused() -> None:
    """No header: 401; wrong secret or a changed body: 403, and no events either way."""
    payload = FAKE.status_payload("wamid.A", "delivered", "1")
    raw, headers = FAKE.signed(payload)
    assert call("POST", {}, body=raw)[0::2] == (401, [])
    _, wrong = FAKE.signed(payload, secret="other-secret")
    assert call("POST", {}, body=raw, headers=wrong)[0::2] == (403, [])
    assert call("POST", {}, body=raw.replace(b"delivered", b"read"), headers=headers)[0::2] == (403, [])
    assert call("POST", {}, config=None, body=raw, headers=headers)[0] == 403


def test_signature_is_checked_over_the_raw_non_ascii_bytes() -> None:
    """Meta's escaped unicode verifies as sent; a customer's message is no delivery event but inbound."""
    raw, headers = FAKE.signed(FAKE.inbound_payload("16505551234", "¿Hay en otro color? 👍", name="Zoë"))
    assert b"\\u00bf" in raw and json.loads(raw)["entry"]
    assert call("POST", {}, body=raw, headers=headers)[0::2] == (200, [])
    ctx = ChannelContext(tenant="t", config=CONFIG, sandbox=False, sandbox_url="", public_url="https://x")
    (message,) = WhatsAppChannel().handle_webhook(ctx, WebhookRequest("POST", headers, {}, raw)).inbound
    assert (
        message.properties["text"] == "¿Hay en otro color? 👍" and message.properties["profile_name"] == "Zoë"
    )


def test_replayed_webhook_gives_the_same_events() -> None:
    """Meta retries: a replay yields identical events (the core applies each status once)."""
    raw, headers = FAKE.signed(FAKE.status_payload("wamid.B", "read", "1"))
    first, second = call("POST", {}, body=raw, headers=headers), call("POST", {}, body=raw, headers=headers)
    assert first == second and first[2][0].status == DeliveryStatus.read


def test_malformed_body_is_400() -> None:
    """Signed but not JSON: 400, no events."""
    raw, headers = b"not json", {"X-Hub-Signature-256": FAKE.signed({})[1]["X-Hub-Signature-256"]}
    headers["X-Hub-Signature-256"] = __import__("tessera_whatsapp.webhooks").webhooks.signature(
        raw, "app-secret"
    )
    assert call("POST", {}, body=raw, headers=headers)[0::2] == (400, [])


def test_the_fake_posts_signed_webhooks_over_http() -> None:
    """The fake's webhook sender reaches a receiver that checks signatures with the channel."""
    received: list[list[ChannelEvent]] = []
    receiver = FastAPI()

    @receiver.post("/webhooks/t/whatsapp")
    async def hook(request: Request) -> Response:
        status, body, events = call("POST", {}, body=await request.body(), headers=dict(request.headers))
        received.append(events)
        return Response(body, status_code=status)

    fake = FakeWhatsApp(app_secret="app-secret")
    with serve(receiver) as receiver_url, serve(fake.app) as fake_url:
        target = receiver_url + "/webhooks/t/whatsapp"
        answer = httpx.post(
            fake_url + "/_sandbox/webhook", json={"url": target, "id": "wamid.C", "status": "delivered"}
        )
        assert answer.json()["status_code"] == 200
        assert fake.post_webhook(target, fake.status_payload("wamid.C", "read", "1"), secret="wrong") == 403
    assert [[e.status for e in events] for events in received] == [[DeliveryStatus.delivered], []]
