"""The WhatsApp channel: template, text and media messages through Meta's WhatsApp Cloud API."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
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
    Problem,
    ProfileSnapshot,
    Suggestion,
    WebhookRequest,
    WebhookResponse,
)
from tessera_whatsapp import sandbox, sending, templates, webhooks
from tessera_whatsapp.bodies import MEDIA_KINDS, WhatsAppTemplate, with_url_suffixes
from tessera_whatsapp.config import WhatsAppConfig

__all__ = ["WhatsAppChannel", "WhatsAppConfig", "WhatsAppTemplate", "normalize_whatsapp_id"]

SEPARATORS = re.compile(r"[\s+\-.()]")
WINDOW = timedelta(hours=24)
INBOUND_EVENT = "WhatsApp Message Received"


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


def _url_suffixes(
    ctx: ChannelContext, batch: list[OutboundMessage]
) -> Callable[[WhatsAppTemplate], WhatsAppTemplate] | None:
    """For a batch with full URLs in URL buttons: cut each to the suffix its approved button takes."""
    if not any("url:http" in str(m.template.get("button_parameters") or "") for m in batch):
        return None
    record = templates.current(ctx)  # once per batch, before the sending threads start

    def prepare(template: WhatsAppTemplate) -> WhatsAppTemplate:
        found = templates.find(record, template.template_name or "", template.language)
        return with_url_suffixes(template, templates.button_url_bases(found)) if found else template

    return prepare


class WhatsAppChannel(Channel):
    """WhatsApp messages, addressed by the recipient's WhatsApp id."""

    key = "whatsapp"
    label = "WhatsApp"
    Config = WhatsAppConfig
    Template = WhatsAppTemplate
    # No core rate limit: deliver keeps each number to its limit itself, across processes (``within_limit``).
    capabilities = Capabilities(
        preview=True, webhooks=True, address_identifier="whatsapp_id", rate_limit_per_second=None,
        inbound_event=INBOUND_EVENT,
    )  # fmt: skip

    def validate(self, ctx: ChannelContext, template: BaseModel, profile: ProfileSnapshot) -> list[Problem]:
        """Free-form kinds only inside the 24-hour window (else suppressed); templates only if approved,
        with the parameters the synced template takes."""
        assert isinstance(template, WhatsAppTemplate)
        if template.kind == "text" or template.kind in MEDIA_KINDS:
            last = profile.last_inbound_at
            if last is None or datetime.now(UTC) - last > WINDOW:
                when = "has never written" if last is None else f"last wrote at {last:%Y-%m-%d %H:%M} UTC"
                message = (
                    f"Outside the 24-hour customer-service window: this customer {when}; "
                    "WhatsApp only takes approved templates then."
                )
                return [Problem("kind", message, suppress=True, reason_code="outside_window")]
            return []
        if not isinstance(ctx.config, WhatsAppConfig):
            return [Problem("config", "WhatsApp is not configured for this tenant: fill in its settings.")]
        record = templates.current(ctx)
        why = templates.refusal(record, template.template_name or "", template.language)
        if why:
            return [Problem("template_name", why)]
        found = templates.find(record, template.template_name or "", template.language)
        if found is None:  # no list could be synced: Meta's answer to the send decides
            return []
        given = templates.parameter_problems(found, len(template.body_parameters), bool(template.header_text))
        return [Problem(name, message) for name, message in given.items()]

    def suggestions(self, ctx: ChannelContext) -> dict[str, list[Suggestion]]:
        """The approved templates of the last sync, for the editors' template name and language."""
        return templates.approved_choices(ctx.tenant)

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
        url = sending.base_url(config, ctx.sandbox, ctx.sandbox_url)
        return sending.deliver_batch(config, url, batch, prepare=_url_suffixes(ctx, batch))

    def handle_webhook(self, ctx: ChannelContext, request: WebhookRequest) -> WebhookResponse:
        """Meta's verification handshake (GET); signed notifications (POST): statuses and customers' messages."""
        config = ctx.config if isinstance(ctx.config, WhatsAppConfig) else None
        return webhooks.handle(config, request)

    def sandbox_config(self) -> dict[str, Any] | None:
        """Credentials and ids the sandbox accepts."""
        return sandbox.sandbox_config()

    def sandbox_app(self) -> Any:
        """A local fake of the WhatsApp Cloud API (messages, templates, window, limits, webhooks)."""
        return sandbox.FakeWhatsApp().app
