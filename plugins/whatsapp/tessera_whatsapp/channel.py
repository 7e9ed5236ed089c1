"""The WhatsApp channel: template, text and media messages through Meta's WhatsApp Cloud API."""

from __future__ import annotations

import html
import re
from typing import Any

from pydantic import BaseModel

from core.plugin_api import (
    Capabilities,
    Channel,
    ChannelContext,
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    Preview,
    ProfileSnapshot,
    WebhookRequest,
    WebhookResponse,
)
from tessera_whatsapp import sandbox, sending, webhooks
from tessera_whatsapp.bodies import WhatsAppTemplate
from tessera_whatsapp.config import WhatsAppConfig

__all__ = ["WhatsAppChannel", "WhatsAppConfig", "WhatsAppTemplate", "normalize_whatsapp_id"]

SEPARATORS = re.compile(r"[\s+\-.()]")


def normalize_whatsapp_id(raw: str) -> str:
    """Return the id as digits only ("+1 650-555 1234" -> "16505551234"); ``ValueError`` if invalid."""
    digits = SEPARATORS.sub("", raw)
    if not digits.isascii() or not digits.isdigit() or not 6 <= len(digits) <= 15:
        raise ValueError("A WhatsApp id is a phone number in international format: 6 to 15 digits.")
    return digits


def _config(ctx: ChannelContext) -> WhatsAppConfig:
    if not isinstance(ctx.config, WhatsAppConfig):
        raise PermanentDeliveryError(
            "WhatsApp is not configured for this tenant.", reason_code="not_configured"
        )
    return ctx.config


class WhatsAppChannel(Channel):
    """WhatsApp messages, addressed by the recipient's WhatsApp id."""

    key = "whatsapp"
    label = "WhatsApp"
    Config = WhatsAppConfig
    Template = WhatsAppTemplate
    capabilities = Capabilities(
        preview=True, webhooks=True, address_identifier="whatsapp_id", rate_limit_per_second=80
    )

    def render_preview(self, ctx: ChannelContext, template: BaseModel, profile: ProfileSnapshot) -> Preview:
        """What will be sent: the template's name and parameters, or the free-form text or media."""
        assert isinstance(template, WhatsAppTemplate)
        if template.kind == "template":
            rows = [
                f"Template <b>{html.escape(template.template_name or '')}</b> ({html.escape(template.language)})"
            ]
            rows += [f"{{{{{i}}}}} = {html.escape(v)}" for i, v in enumerate(template.body_parameters, 1)]
        elif template.kind == "text":
            rows = [html.escape(template.text or "")]
        else:
            rows = [
                f"{template.kind}: {html.escape(template.media_url or '')}",
                html.escape(template.caption or ""),
            ]
        return Preview(html="<div class='whatsapp'>" + "<br>".join(rows) + "</div>")

    def deliver(self, ctx: ChannelContext, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        """Send each message to its WhatsApp id; sent with Meta's ``wamid``, or failed with why."""
        if not batch:
            return []
        config = _config(ctx)
        return sending.deliver_batch(config, sending.base_url(config, ctx.sandbox, ctx.sandbox_url), batch)

    def handle_webhook(self, ctx: ChannelContext, request: WebhookRequest) -> WebhookResponse:
        """Meta's verification handshake (GET) and signed status notifications (POST)."""
        config = ctx.config if isinstance(ctx.config, WhatsAppConfig) else None
        return webhooks.handle(config, request)

    def sandbox_config(self) -> dict[str, Any] | None:
        """Credentials and ids the sandbox accepts."""
        return sandbox.sandbox_config()

    def sandbox_app(self) -> Any:
        """A local fake of the WhatsApp Cloud API (messages, templates, window, limits, webhooks)."""
        return sandbox.FakeWhatsApp().app
