"""The Apple Wallet channel: its configuration, template, and signed .pkpass files.

The core renders each profile's pass; this channel checks it against Apple's rules
(:mod:`~tessera_wallet_apple.checks`) and packages and signs it
(:mod:`~tessera_wallet_apple.package`) with the tenant's Pass Type ID certificate
(:mod:`~tessera_wallet_apple.certificates`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from core.plugin_api import (
    Capabilities,
    ChannelContext,
    PassFile,
    PassSend,
    PermanentDeliveryError,
    Preview,
    Problem,
    RenderedPass,
    WalletChannel,
)
from tessera_wallet_apple.apns import ApnsRefused, ApnsUnavailable, push_updates
from tessera_wallet_apple.certificates import CertificateError, Part, SigningIdentity, load_p12, load_pem
from tessera_wallet_apple.checks import apple_problems
from tessera_wallet_apple.package import MEDIA_TYPE, build_pkpass
from tessera_wallet_apple.preview import preview
from tessera_wallet_apple.sandbox import create_sandbox_app

KEY = "wallet_apple"
FIELD_OF_PART: dict[Part, str] = {  # which config field to fix for each part of an upload
    "p12": "certificate_p12",
    "password": "certificate_password",
    "certificate": "certificate_pem",
    "key": "private_key_pem",
    "key_password": "private_key_password",
    "wwdr": "wwdr_certificate_pem",
}


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def _refuse(field: str, message: str) -> ValidationError:
    """A validation error placed on one field, so the settings form shows it beside that field."""
    error = PydanticCustomError("apple_certificate", "{message}", {"message": message})
    return ValidationError.from_exception_data(
        "AppleWalletConfig", [InitErrorDetails(type=error, loc=(field,), input=None)]
    )


class AppleWalletConfig(BaseModel):
    """A tenant's Pass Type ID certificate (a .p12, or PEM certificate and key) and Apple's WWDR intermediate.

    The pass type and team identifiers are read from the certificate; a value given that disagrees
    with it is refused. Saving an unusable certificate fails with a message saying what to fix.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    certificate_p12: SecretStr | None = Field(
        default=None,
        description="The Pass Type ID certificate and its private key (.p12), base64.",
        json_schema_extra={"upload": "base64"},
    )
    certificate_password: SecretStr | None = Field(default=None, description="The password of the .p12 file.")
    certificate_pem: str | None = Field(
        default=None,
        description="Or: the Pass Type ID certificate as PEM (instead of the .p12).",
        json_schema_extra={"upload": "text"},
    )
    private_key_pem: SecretStr | None = Field(
        default=None, description="Its private key as PEM.", json_schema_extra={"upload": "text"}
    )
    private_key_password: SecretStr | None = Field(
        default=None, description="The private key's password, if it is encrypted."
    )
    wwdr_certificate_pem: str = Field(
        description="Apple's WWDR G4 intermediate certificate (AppleWWDRCAG4.cer), as PEM.",
        json_schema_extra={"upload": "text"},
    )
    pass_type_identifier: str | None = Field(
        default=None,
        pattern=r"^pass\.[A-Za-z0-9.-]+$",
        description="Read from the certificate, e.g. pass.com.shop.loyalty.",
    )
    team_identifier: str | None = Field(
        default=None, pattern=r"^[A-Z0-9]{10}$", description="Read from the certificate (10 characters)."
    )
    apns_topic: str | None = Field(default=None, description="Defaults to the pass type identifier.")
    apns_url: str | None = Field(
        default=None,
        pattern=r"^https://[^\s/]+(:\d+)?$",
        description="APNs address; empty for Apple's (https://api.push.apple.com). For a private gateway.",
    )
    apns_ca_pem: str | None = Field(
        default=None,
        description="The CA that signs the APNs gateway's certificate, if not a public one.",
        json_schema_extra={"upload": "text"},
    )

    @model_validator(mode="after")
    def _load_certificate(self) -> AppleWalletConfig:
        """Load the identity now, so an unusable upload is refused when it is saved."""
        identity = self.identity()
        for name, found in (
            ("pass_type_identifier", identity.pass_type_identifier),
            ("team_identifier", identity.team_identifier),
        ):
            given = getattr(self, name)
            if given is not None and given != found:
                raise _refuse(
                    name, f"'{given}' does not match the certificate, which is for '{found}': leave it empty."
                )
            setattr(self, name, found)
        return self

    def identity(self) -> SigningIdentity:
        """The loaded signing identity (parsed once per distinct upload, checked for validity each call).

        Raises ``ValidationError`` on the field to fix when the upload is incomplete or unusable.
        """
        has_p12 = self.certificate_p12 is not None
        has_pem = self.certificate_pem is not None or self.private_key_pem is not None
        if has_p12 and has_pem:
            raise _refuse("certificate_p12", "Give either the .p12 or the PEM certificate and key, not both.")
        try:
            if has_p12:
                return load_p12(
                    _secret(self.certificate_p12) or "",
                    _secret(self.certificate_password),
                    self.wwdr_certificate_pem,
                )
            if self.certificate_pem is None or self.private_key_pem is None:
                missing = "certificate_pem" if self.certificate_pem is None else "private_key_pem"
                if not has_pem:
                    missing = "certificate_p12"
                raise _refuse(
                    missing,
                    "Upload the Pass Type ID certificate: either the .p12 exported from Keychain Access "
                    "(base64) with its password, or both the certificate and its private key as PEM.",
                )
            return load_pem(
                self.certificate_pem,
                _secret(self.private_key_pem) or "",
                self.wwdr_certificate_pem,
                _secret(self.private_key_password),
            )
        except CertificateError as exc:
            raise _refuse(FIELD_OF_PART[exc.part], str(exc)) from None


def _config(ctx: ChannelContext) -> AppleWalletConfig:
    if not isinstance(ctx.config, AppleWalletConfig):
        raise PermanentDeliveryError(
            "Apple Wallet is not configured for this tenant: upload the Pass Type ID certificate under "
            "Settings > Plugins.",
            reason_code="not_configured",
        )
    return ctx.config


class AppleWalletChannel(WalletChannel):
    """Passes in Apple Wallet, downloaded as signed .pkpass files and kept current by push."""

    key = KEY
    label = "Apple Wallet"
    Config = AppleWalletConfig
    Template = PassSend
    capabilities = Capabilities(preview=True, update=True, revoke=True, webhooks=False)

    def check_pass(self, ctx: ChannelContext, rendered: RenderedPass) -> list[Problem]:
        """What Apple Wallet would refuse, crop or ignore in this pass; empty when it can go."""
        identity = None
        if isinstance(ctx.config, AppleWalletConfig):
            try:
                identity = ctx.config.identity()
            except ValidationError as exc:  # e.g. the certificate expired since it was saved
                return [Problem("certificate", str(exc.errors()[0]["msg"]))]
        return apple_problems(rendered, identity)

    def build_pass(self, ctx: ChannelContext, rendered: RenderedPass) -> PassFile:
        """The pass as a signed ``.pkpass`` file."""
        try:
            identity = _config(ctx).identity()
        except ValidationError as exc:
            raise PermanentDeliveryError(str(exc.errors()[0]["msg"]), reason_code="certificate") from None
        return PassFile(
            content=build_pkpass(rendered, identity),
            media_type=MEDIA_TYPE,
            filename=f"{rendered.serial}.pkpass",
        )

    def notify_devices(self, ctx: ChannelContext, push_tokens: list[str]) -> list[str]:
        """Push ``{}`` to each device over APNs (HTTP/2, certificate auth); the tokens APNs calls gone."""
        config = _config(ctx)
        topic = config.apns_topic or config.pass_type_identifier or ""
        identity = None if ctx.sandbox else config.identity().pem_pair()
        ca = config.apns_ca_pem.encode() if config.apns_ca_pem else None
        try:
            outcome = push_updates(ctx, identity, topic, push_tokens, base_url=config.apns_url, ca_pem=ca)
        except (ApnsUnavailable, ApnsRefused) as exc:
            exc.gone = exc.outcome.gone  # the registrations APNs called gone go, whatever else failed
            raise
        return outcome.gone

    def preview_pass(self, rendered: RenderedPass, language: str) -> Preview:
        """The pass front and back as Wallet shows them, in ``language``, with a PNG of the front."""
        return preview(rendered, language)

    def pass_type_identifier(self, ctx: ChannelContext) -> str | None:
        """The Pass Type ID in this tenant's certificate, or None when it is not configured."""
        config = ctx.config
        return config.pass_type_identifier if isinstance(config, AppleWalletConfig) else None

    def web_service_url(self, ctx: ChannelContext) -> str | None:
        """Where the core mounts this plugin's PassKit web service for the tenant (Apple appends /v1/...)."""
        return f"{ctx.public_url.rstrip('/')}/x/{ctx.tenant}/{KEY}"

    def sandbox_config(self) -> dict[str, Any] | None:
        """The generated TEST-ONLY certificate chain's .p12: passes sign and download, but no real
        iPhone trusts them (see :mod:`tessera_wallet_apple.testchain`)."""
        from tessera_wallet_apple import testchain  # generates keys on first use: only when asked

        return dict(testchain.chain().p12_config())

    def sandbox_app(self) -> Any:
        """A local fake of APNs for pass updates."""
        return create_sandbox_app()
