"""The Google Wallet channel: its configuration, template and capabilities.

Only registration is built: issuing, updating and revoking passes, preview, save/delete callbacks
and the sandbox's behaviour come in later issues. Until then the base :class:`Channel` methods
refuse with ``ChannelNotImplemented``.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from core.plugin_api import Capabilities, Channel
from tessera_wallet_google.sandbox import create_sandbox_app


class GoogleWalletConfig(BaseModel):
    """A tenant's Google Wallet issuer account and the service account that acts for it."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    issuer_id: str = Field(pattern=r"^\d+$", description="Issuer id from the Google Pay & Wallet Console.")
    service_account_json: SecretStr = Field(
        description="Service account key file (JSON) added as a user of the issuer account."
    )
    origins: list[str] = Field(
        default_factory=list, description="Web origins allowed to show the 'Add to Google Wallet' button."
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

    @field_validator("origins")
    @classmethod
    def _are_origins(cls, value: list[str]) -> list[str]:
        """Each origin is a scheme and host, like ``https://shop.example.com``."""
        for origin in value:
            if not origin.startswith(("https://", "http://")) or "/" in origin.split("://", 1)[1]:
                raise ValueError(f"'{origin}' is not a web origin (e.g. https://shop.example.com).")
        return value


class GoogleWalletTemplate(BaseModel):
    """The pass class a marketer designs: its kind and branding."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["loyalty", "offer", "generic", "giftCard"] = "loyalty"
    issuer_name: str = Field(min_length=1, max_length=100)
    program_name: str = Field(min_length=1, max_length=100)
    hex_background_color: str | None = Field(default=None, pattern=r"^#[0-9a-fA-F]{6}$")


class GoogleWalletChannel(Channel):
    """Passes in Google Wallet, saved through an 'Add to Google Wallet' link."""

    key = "wallet_google"
    label = "Google Wallet"
    Config = GoogleWalletConfig
    Template = GoogleWalletTemplate
    capabilities = Capabilities(preview=True, update=True, revoke=True, webhooks=True)

    def sandbox_app(self) -> Any:
        """A local fake of the Google Wallet API (answers 501 until its own issue builds it)."""
        return create_sandbox_app()
