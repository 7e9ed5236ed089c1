"""Meta's webhook verification handshake is real; event POSTs are refused honestly."""

from __future__ import annotations

from pydantic import SecretStr
from tessera_whatsapp.channel import WhatsAppChannel, WhatsAppConfig

from core.plugin_api import ChannelContext, WebhookRequest

CONFIG = WhatsAppConfig(
    phone_number_id="106540352242922",
    business_account_id="102290129340398",
    access_token=SecretStr("EAAG-token"),
    app_secret=SecretStr("app-secret"),
    webhook_verify_token=SecretStr("s3cret-verify"),
)


def call(method: str, query: dict[str, str], config: WhatsAppConfig | None = CONFIG) -> tuple[int, str]:
    """Send one webhook request to the channel; return status and body."""
    ctx = ChannelContext(tenant="t", config=config, sandbox=False, sandbox_url="", public_url="https://x")
    response = WhatsAppChannel().handle_webhook(ctx, WebhookRequest(method, {}, query, b""))
    return response.status_code, response.body


def hub(mode: str = "subscribe", token: str = "s3cret-verify") -> dict[str, str]:
    """The query string Meta sends to verify a callback URL."""
    return {"hub.mode": mode, "hub.verify_token": token, "hub.challenge": "1158201444"}


def test_handshake_echoes_the_challenge() -> None:
    """Right mode and token: 200 with the raw challenge."""
    assert call("GET", hub()) == (200, "1158201444")


def test_handshake_refuses_wrong_token_mode_or_missing_config() -> None:
    """Anything else is 403 and does not echo the challenge."""
    for query, config in [(hub(token="nope"), CONFIG), (hub(mode="unsubscribe"), CONFIG), (hub(), None)]:
        status, body = call("GET", query, config)
        assert status == 403 and "1158201444" not in body
    assert call("GET", {}, CONFIG)[0] == 403


def test_event_posts_are_not_implemented() -> None:
    """POSTed events answer 501 rather than pretend to be processed."""
    status, body = call("POST", {})
    assert status == 501 and "not implemented" in body
