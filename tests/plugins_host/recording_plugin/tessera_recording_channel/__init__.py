"""Tessera plugin ``recording_channel``: a channel whose provider is a local fake that records all.

Used by Tessera's tests and benchmarks of the delivery pipeline. It talks to the provider of
``tests/fakes/provider.py`` (``POST {endpoint}/v1/messages``) exactly as a real channel talks to
a real provider: bearer key, idempotency keys, rate limits, errors, signed status webhooks. It
imports only the public plugin API from Tessera (``core.plugin_api``).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

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
    WebhookRequest,
    WebhookResponse,
    hookimpl,
)

from . import sending, webhooks

KEY = "recording_channel"
REPLY_WINDOW = timedelta(hours=24)
log = logging.getLogger(__name__)


class RecordingConfig(BaseModel):
    """Where the provider is and the account's secrets."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str | None = Field(
        default=None,
        description="Base URL of the provider (e.g. http://127.0.0.1:8025); test mode uses the sandbox.",
    )
    api_key: SecretStr = Field(description="API key of the provider account.")
    webhook_secret: SecretStr | None = Field(
        default=None, description="Secret the provider signs its status callbacks with."
    )


class RecordingTemplate(BaseModel):
    """What a marketer writes: an optional title and a body (personalized by the core)."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, max_length=200)
    body: str = Field(min_length=1, max_length=4000)
    reply_only: bool = Field(default=False, description="Only to people who wrote in the last 24 hours.")
    image_url: str | None = Field(
        default=None, description="Shown beside the body.", json_schema_extra={"track_links": False}
    )


class RecordingChannel(Channel):
    """Sends each message with ``POST {endpoint}/v1/messages``, a batch's messages concurrently."""

    key = KEY
    label = "Recording channel"
    Config = RecordingConfig
    Template = RecordingTemplate
    capabilities = Capabilities(
        preview=True, webhooks=True, address_identifier="email", inbound_event="Recording Message Received"
    )

    def validate(self, ctx: ChannelContext, template: BaseModel, profile: ProfileSnapshot) -> list[Problem]:
        """A reply-only message waits for the person to have written within the last 24 hours."""
        assert isinstance(template, RecordingTemplate)
        last = profile.last_inbound_at
        if template.reply_only and (last is None or datetime.now(UTC) - last > REPLY_WINDOW):
            return [
                Problem("reply_only", "They have not written in the last 24 hours.", True, "outside_window")
            ]
        return []

    def render_preview(self, ctx: ChannelContext, template: BaseModel, profile: ProfileSnapshot) -> Preview:
        """The title and body as the recipient will read them."""
        assert isinstance(template, RecordingTemplate)
        title = f"<h3 class='recording-title'>{html.escape(template.title)}</h3>" if template.title else ""
        body = f"<p class='recording-body'>{html.escape(template.body)}</p>"
        return Preview(html=f"<div class='recording-message'>{title}{body}</div>")

    def deliver(self, ctx: ChannelContext, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        """Send the batch; results are mapped from the provider's answer to each message."""
        config = self._config(ctx)
        results = sending.send_batch(
            f"{_base_url(ctx, config)}/v1/messages", config.api_key.get_secret_value(), batch
        )
        if results and all(result.reason_code == "unauthorized" for result in results):
            raise PermanentDeliveryError(
                "The provider refused the API key: fix it in the channel's settings.",
                reason_code="unauthorized",
            )
        return results

    def handle_webhook(self, ctx: ChannelContext, request: WebhookRequest) -> WebhookResponse:
        """Verify the provider's signature (when a secret is set) and read its status events."""
        if not isinstance(ctx.config, RecordingConfig):
            return WebhookResponse(status_code=401, body="The Recording channel is not configured.")
        secret = ctx.config.webhook_secret
        return webhooks.handle(request, secret.get_secret_value() if secret is not None else None)

    def sandbox_app(self) -> Any | None:
        """The fake provider of Tessera's test tree, accepting any API key; None where it is absent."""
        try:
            # Late and optional: the fake lives in Tessera's source tree, not in this package.
            from tests.fakes.provider import ProviderState, make_provider_app
        except ImportError as exc:
            log.warning("The Recording channel has no sandbox here: tests.fakes.provider (%s).", exc)
            return None
        return make_provider_app(ProviderState(api_key=None))

    def _config(self, ctx: ChannelContext) -> RecordingConfig:
        if not isinstance(ctx.config, RecordingConfig):
            raise PermanentDeliveryError(
                "The Recording channel is not configured.", reason_code="not_configured"
            )
        return ctx.config


def _base_url(ctx: ChannelContext, config: RecordingConfig) -> str:
    """The provider to call: the sandbox in test mode (the contract's rule), else the endpoint."""
    if ctx.sandbox:
        return ctx.sandbox_url.rstrip("/")
    if config.endpoint:
        return config.endpoint.rstrip("/")
    raise PermanentDeliveryError(
        "The Recording channel has no endpoint: set one, or use the channel in test mode.",
        reason_code="not_configured",
    )


@hookimpl
def register_channels(register: Callable[[Channel], None]) -> None:
    """Register the Recording channel."""
    register(RecordingChannel())
