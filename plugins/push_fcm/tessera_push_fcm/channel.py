"""The FCM push channel: its configuration, template, capabilities and sending."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from tessera_google_auth import ServiceAccount, checked_key_file, introduce, service_account

from core.plugin_api import (
    Capabilities,
    Channel,
    ChannelContext,
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    Preview,
    ProfileSnapshot,
)
from tessera_push_fcm.message import FcmTemplate
from tessera_push_fcm.preview import preview_html
from tessera_push_fcm.sandbox import create_sandbox_app
from tessera_push_fcm.sender import Sender

KEY = "push_fcm"
FCM_API = "https://fcm.googleapis.com"
MAX_TOKEN_LENGTH = 4096
QUOTA_PER_SECOND = 10_000  # FCM's default project quota: 600,000 messages a minute


def normalize_fcm_token(raw: str) -> str:
    """Return the token without surrounding blanks; raise ``ValueError`` if it cannot be one."""
    token = raw.strip()
    if not token:
        raise ValueError("An FCM registration token cannot be empty.")
    if any(char.isspace() for char in token):
        raise ValueError("An FCM registration token cannot contain spaces or line breaks.")
    if len(token) > MAX_TOKEN_LENGTH:
        raise ValueError(f"An FCM registration token is at most {MAX_TOKEN_LENGTH} characters long.")
    return token


class FcmConfig(BaseModel):
    """A tenant's Firebase project and the service account allowed to send through it."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    project_id: str = Field(
        pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="Firebase project ID, e.g. 'shop-app-b5ae1'."
    )
    service_account_json: SecretStr = Field(
        description="The service account key file (JSON) with the role Firebase Cloud Messaging Admin: paste it."
    )
    concurrency: int = Field(
        default=64,
        ge=1,
        le=64,
        description="FCM calls (one per message and device) in flight at once, per batch.",
    )
    api_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+(:\d+)?(/[^\s]*)?$",
        description="Empty for Google. For a private gateway: the address serving /v1/... and /token.",
    )

    @field_validator("service_account_json")
    @classmethod
    def _is_service_account(cls, value: SecretStr) -> SecretStr:
        """Reject anything that is not a usable Google service-account key file."""
        return checked_key_file(value)

    def account(self) -> ServiceAccount:
        """The service account, its key parsed once."""
        return service_account(self.service_account_json.get_secret_value())


def _config(ctx: ChannelContext) -> FcmConfig:
    if not isinstance(ctx.config, FcmConfig):
        raise PermanentDeliveryError(
            "Firebase push is not configured for this tenant: add the project id and the service "
            "account key under Settings > Plugins.",
            reason_code="not_configured",
        )
    return ctx.config


def sender(ctx: ChannelContext, config: FcmConfig) -> Sender:
    """The sender for this tenant: to the sandbox in test mode (told of the account first), else FCM."""
    account = config.account()
    base = ctx.sandbox_url if ctx.sandbox else config.api_url
    if ctx.sandbox:
        introduce(ctx.sandbox_url, account)
    if base:
        base = base.rstrip("/")
        return Sender(account, config.project_id, base, f"{base}/token", config.concurrency)
    return Sender(account, config.project_id, FCM_API, account.token_uri, config.concurrency)


class FcmChannel(Channel):
    """Push notifications to app installs, addressed by their FCM registration token."""

    key = KEY
    label = "Push notification (Firebase)"
    Config = FcmConfig
    Template = FcmTemplate
    capabilities = Capabilities(
        preview=True, webhooks=False, address_identifier="fcm_token", rate_limit_per_second=QUOTA_PER_SECOND
    )

    def render_preview(self, ctx: ChannelContext, template: BaseModel, profile: ProfileSnapshot) -> Preview:
        """The notification on an Android and an iOS lock screen, side by side."""
        return Preview(html=preview_html(FcmTemplate.model_validate(template.model_dump())))

    def deliver(self, ctx: ChannelContext, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        """Send each message to its registration token; one result per message."""
        config = _config(ctx)
        return sender(ctx, config).deliver(batch)

    def sandbox_config(self) -> dict[str, Any] | None:
        """A TEST-ONLY project and service account generated at run time: they work only in the sandbox."""
        from tessera_push_fcm.testkeys import PROJECT_ID, test_service_account  # generates a key on first use

        return {"project_id": PROJECT_ID, "service_account_json": json.dumps(test_service_account())}

    def sandbox_app(self) -> Any:
        """A local fake of FCM HTTP v1 and Google's token endpoint."""
        return create_sandbox_app()
