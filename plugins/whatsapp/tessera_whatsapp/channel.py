"""The WhatsApp channel: its configuration, template, capabilities and webhook handshake.

Only registration and Meta's webhook verification handshake are built: sending, preview, webhook
events and the sandbox's behaviour come in later issues. Until then the base :class:`Channel`
methods refuse with ``ChannelNotImplemented``.
"""

from __future__ import annotations

import hmac
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from core.plugin_api import Capabilities, Channel, ChannelContext, WebhookRequest, WebhookResponse
from tessera_whatsapp.sandbox import create_sandbox_app

SEPARATORS = re.compile(r"[\s+\-.()]")


def normalize_whatsapp_id(raw: str) -> str:
    """Return the id as digits only ("+1 650-555 1234" -> "16505551234"); ``ValueError`` if invalid."""
    digits = SEPARATORS.sub("", raw)
    if not digits.isascii() or not digits.isdigit() or not 6 <= len(digits) <= 15:
        raise ValueError("A WhatsApp id is a phone number in international format: 6 to 15 digits.")
    return digits


class WhatsAppConfig(BaseModel):
    """A tenant's WhatsApp Business number and the credentials of its Meta app."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    phone_number_id: str = Field(pattern=r"^\d+$", description="Graph id of the sending number.")
    business_account_id: str = Field(pattern=r"^\d+$", description="WhatsApp Business Account id.")
    access_token: SecretStr = Field(description="System user access token (whatsapp_business_messaging).")
    app_secret: SecretStr = Field(description="The Meta app's secret, to check webhook signatures.")
    webhook_verify_token: SecretStr = Field(description="Any string; give Meta the same one.")
    api_version: str = Field(default="v23.0", pattern=r"^v\d+\.\d+$")


class WhatsAppTemplate(BaseModel):
    """An approved WhatsApp message template and the values of its body parameters."""

    model_config = ConfigDict(extra="forbid")

    template_name: str = Field(pattern=r"^[a-z0-9_]+$", max_length=512)
    language: str = Field(default="en_US", pattern=r"^[a-z]{2,3}(_[A-Za-z]{2,4})?$")
    body_parameters: list[str] = Field(default_factory=list, description="{{1}}, {{2}}... in order.")


def verify_subscription(config: BaseModel | None, query: dict[str, str]) -> WebhookResponse:
    """Meta's GET handshake: echo ``hub.challenge`` if mode and verify token match, else 403."""
    expected = ""
    if isinstance(config, WhatsAppConfig):
        expected = config.webhook_verify_token.get_secret_value()
    given = query.get("hub.verify_token", "")
    if not expected or query.get("hub.mode") != "subscribe" or not hmac.compare_digest(given, expected):
        return WebhookResponse(status_code=403, body="Verification failed: wrong hub.mode or verify token.")
    return WebhookResponse(status_code=200, body=query.get("hub.challenge", ""))


class WhatsAppChannel(Channel):
    """WhatsApp template messages, addressed by the recipient's WhatsApp id."""

    key = "whatsapp"
    label = "WhatsApp"
    Config = WhatsAppConfig
    Template = WhatsAppTemplate
    capabilities = Capabilities(
        preview=True, webhooks=True, address_identifier="whatsapp_id", rate_limit_per_second=80
    )

    def handle_webhook(self, ctx: ChannelContext, request: WebhookRequest) -> WebhookResponse:
        """Answer Meta's verification handshake; event notifications (POST) are not handled yet."""
        if request.method == "GET":
            return verify_subscription(ctx.config, request.query)
        return WebhookResponse(status_code=501, body="WhatsApp webhook events are not implemented yet.")

    def sandbox_app(self) -> Any:
        """A local fake of the WhatsApp Cloud API (answers 501 until its own issue builds it)."""
        return create_sandbox_app()
