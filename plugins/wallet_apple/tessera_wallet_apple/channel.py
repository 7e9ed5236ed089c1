"""The Apple Wallet channel: its configuration, template and capabilities.

Only registration is built: signing .pkpass files, the PassKit web service, APNs update pushes,
preview and the sandbox's behaviour come in later issues. Until then the base :class:`Channel`
methods refuse with ``ChannelNotImplemented``.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator

from core.plugin_api import Capabilities, Channel
from tessera_wallet_apple.sandbox import create_sandbox_app

RGB = re.compile(r"^rgb\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)$")


def check_rgb(value: str) -> str:
    """Accept a CSS ``rgb(r, g, b)`` colour with each part 0-255, as pass.json requires."""
    match = RGB.match(value)
    if match is None or any(int(part) > 255 for part in match.groups()):
        raise ValueError(f"'{value}' is not a colour like rgb(255, 255, 255).")
    return value


RgbColor = Annotated[str, AfterValidator(check_rgb)]


class AppleWalletConfig(BaseModel):
    """A tenant's Pass Type ID and the certificate that signs its passes and pushes updates."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    pass_type_identifier: str = Field(
        pattern=r"^pass\.[A-Za-z0-9.-]+$", description="e.g. pass.com.shop.loyalty"
    )
    team_identifier: str = Field(pattern=r"^[A-Z0-9]{10}$", description="The 10-character Apple team id.")
    certificate_p12: SecretStr = Field(description="The Pass Type ID certificate and key (.p12), base64.")
    certificate_password: SecretStr = Field(description="The password of the .p12 file.")
    apns_topic: str | None = Field(default=None, description="Defaults to the pass type identifier.")

    @field_validator("certificate_p12")
    @classmethod
    def _is_base64(cls, value: SecretStr) -> SecretStr:
        """The .p12 must arrive as non-empty base64 text."""
        try:
            raw = base64.b64decode(value.get_secret_value(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("The .p12 certificate must be base64 encoded (base64 -i cert.p12).") from None
        if not raw:
            raise ValueError("The .p12 certificate is empty.")
        return value


class AppleWalletTemplate(BaseModel):
    """The look of a pass: its style and branding, as pass.json names them."""

    model_config = ConfigDict(extra="forbid")

    style: Literal["storeCard", "coupon", "eventTicket", "generic"] = "storeCard"
    organization_name: str = Field(min_length=1)
    description: str = Field(min_length=1, description="Spoken by VoiceOver; required by Apple.")
    foreground_color: RgbColor | None = None
    background_color: RgbColor | None = None
    label_color: RgbColor | None = None


class AppleWalletChannel(Channel):
    """Passes in Apple Wallet, downloaded as signed .pkpass files and kept current by push."""

    key = "wallet_apple"
    label = "Apple Wallet"
    Config = AppleWalletConfig
    Template = AppleWalletTemplate
    capabilities = Capabilities(preview=True, update=True, revoke=True, webhooks=False)

    def sandbox_app(self) -> Any:
        """A local fake of APNs for pass updates (answers 501 until its own issue builds it)."""
        return create_sandbox_app()
