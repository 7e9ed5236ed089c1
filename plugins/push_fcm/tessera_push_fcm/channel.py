"""The FCM push channel: its configuration, template and capabilities.

Only registration is built: delivery, preview and the sandbox's behaviour come in later issues,
and until then the base :class:`Channel` methods refuse with ``ChannelNotImplemented``.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from core.plugin_api import Capabilities, Channel
from tessera_push_fcm.sandbox import create_sandbox_app

MAX_TOKEN_LENGTH = 4096


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

    project_id: str = Field(min_length=1, description="Firebase project ID, e.g. 'shop-app-b5ae1'.")
    service_account_json: SecretStr = Field(
        description="The service account key file (JSON) with the role Firebase Cloud Messaging Admin."
    )

    @field_validator("service_account_json")
    @classmethod
    def _is_service_account(cls, value: SecretStr) -> SecretStr:
        """Reject anything that is not a Google service-account key file."""
        try:
            info: Any = json.loads(value.get_secret_value())
        except ValueError:
            raise ValueError("Paste the whole service account key file: it is not valid JSON.") from None
        if not isinstance(info, dict) or not {"client_email", "private_key"} <= info.keys():
            raise ValueError("This JSON is not a service account key (needs client_email and private_key).")
        return value


class FcmTemplate(BaseModel):
    """One push notification, as a marketer writes it."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1)
    body: str = Field(min_length=1)
    image_url: str | None = None
    data: dict[str, str] = Field(default_factory=dict, description="Key/value pairs the app receives.")
    deep_link: str | None = Field(default=None, description="Where a tap opens the app or page.")


class FcmChannel(Channel):
    """Push notifications to app installs, addressed by their FCM registration token."""

    key = "push_fcm"
    label = "Push notification (Firebase)"
    Config = FcmConfig
    Template = FcmTemplate
    capabilities = Capabilities(
        preview=True, webhooks=False, address_identifier="fcm_token", rate_limit_per_second=500
    )

    def sandbox_app(self) -> Any:
        """A local fake of the FCM HTTP v1 API (answers 501 until its own issue builds it)."""
        return create_sandbox_app()
