"""The Google Wallet channel: passes kept at Google, saved from a signed link, updated by the API.

The core renders each profile's pass; this channel turns it into Google's class and object
(:mod:`~tessera_wallet_google.objects`), checks them against Google's schema, keeps them current
at Google over the REST API (:mod:`~tessera_wallet_google.client`), signs the save links
(:mod:`~tessera_wallet_google.savelink`) and turns Google's signed save and delete callbacks
(:mod:`~tessera_wallet_google.callbacks`) into installs and removals.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from tessera_google_auth import ServiceAccount, checked_key_file, introduce, service_account

from core.plugin_api import (
    Capabilities,
    ChannelContext,
    PassSend,
    PassUpdate,
    PermanentDeliveryError,
    Preview,
    Problem,
    RenderedPass,
    WalletChannel,
    WebhookRequest,
    WebhookResponse,
    pass_registry,
)
from tessera_wallet_google.callbacks import (
    KEYS_PATH,
    CallbackRefused,
    RootKey,
    parse_root_keys,
    verify_callback,
)
from tessera_wallet_google.client import GoogleApiError, WalletApi, delivery_error
from tessera_wallet_google.objects import (
    COLLECTIONS,
    SCHEMAS,
    GooglePass,
    google_pass,
    google_problems,
    message,
)
from tessera_wallet_google.preview import preview
from tessera_wallet_google.sandbox import create_sandbox_app
from tessera_wallet_google.savelink import GOOGLE_SAVE_BASE, save_payload, save_token, save_url
from tessera_wallet_google.schema import schema_problems

KEY = "wallet_google"
GOOGLE_API = "https://walletobjects.googleapis.com"
CONCURRENCY = 8  # object calls in flight per publish: Google answers in tens of milliseconds
KEYS_TTL = 3600.0  # Google rotates its callback signing keys rarely; an hour keeps up with a rotation


class GoogleWalletConfig(BaseModel):
    """A tenant's Google Wallet issuer account and the service account that acts for it."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    issuer_id: str = Field(pattern=r"^\d+$", description="Issuer id from the Google Pay & Wallet Console.")
    service_account_json: SecretStr = Field(
        description="Service account key file (JSON) added as a user of the issuer account.",
        json_schema_extra={"upload": "text"},
    )
    origins: list[str] = Field(
        default_factory=list, description="Web origins allowed to show the 'Add to Google Wallet' button."
    )
    api_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+(:\d+)?(/[^\s]*)?$",
        description="Empty for Google. For a private gateway: the address that serves the Wallet API, "
        "/token, the save page and Google's callback keys.",
    )

    @field_validator("service_account_json")
    @classmethod
    def _is_service_account(cls, value: SecretStr) -> SecretStr:
        """Reject anything that is not a usable Google service-account key file."""
        return checked_key_file(value)

    @field_validator("origins")
    @classmethod
    def _are_origins(cls, value: list[str]) -> list[str]:
        """Each origin is a scheme and host, like ``https://shop.example.com``."""
        for origin in value:
            if not origin.startswith(("https://", "http://")) or "/" in origin.split("://", 1)[1]:
                raise ValueError(f"'{origin}' is not a web origin (e.g. https://shop.example.com).")
        return value

    def account(self) -> ServiceAccount:
        """The service account, its key parsed once."""
        return service_account(self.service_account_json.get_secret_value())


class GoogleTemplateSettings(BaseModel):
    """What a pass template sets for Google Wallet alone."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["automatic", "loyalty", "offer", "generic", "giftCard"] = Field(
        default="automatic",
        description="The kind of Google Wallet pass. Automatic: from the style (store card → loyalty, "
        "coupon → offer, others → generic).",
    )
    currency: str | None = Field(
        default=None, pattern=r"^[A-Z]{3}$", description="Gift cards: the balance's currency, e.g. EUR."
    )
    issuer_name: str | None = Field(
        default=None, max_length=100, description="Shown on the card instead of the organization name."
    )
    program_name: str | None = Field(
        default=None,
        max_length=100,
        description="Loyalty cards: the program's name (default: the logo text).",
    )


@dataclass(frozen=True)
class Addresses:
    """Where this tenant's calls go: Google, a private gateway, or the plugin's sandbox."""

    api: str
    token_uri: str
    save: str
    keys: str


def _config(ctx: ChannelContext) -> GoogleWalletConfig:
    if not isinstance(ctx.config, GoogleWalletConfig):
        raise PermanentDeliveryError(
            "Google Wallet is not configured for this tenant: add the issuer id and the service account "
            "key under Settings > Plugins.",
            reason_code="not_configured",
        )
    return ctx.config


def addresses(ctx: ChannelContext, config: GoogleWalletConfig) -> Addresses:
    """The addresses for this tenant (the sandbox in test mode, which is told of the account first)."""
    if ctx.sandbox:
        introduce(ctx.sandbox_url, config.account())
    base = ctx.sandbox_url if ctx.sandbox else config.api_url
    if base:
        base = base.rstrip("/")
        return Addresses(api=base, token_uri=f"{base}/token", save=base, keys=base + KEYS_PATH)
    return Addresses(
        api=GOOGLE_API,
        token_uri=config.account().token_uri,
        save=GOOGLE_SAVE_BASE,
        keys=GOOGLE_SAVE_BASE + KEYS_PATH,
    )


class _RootKeys:
    """Google's callback signing keys per address, fetched when needed and kept for an hour."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[list[RootKey], float]] = {}

    def get(self, url: str) -> list[RootKey]:
        with self._lock:
            held = self._keys.get(url)
            if held is not None and held[1] > time.monotonic():
                return held[0]
        answer = httpx.get(url, timeout=10.0)
        answer.raise_for_status()
        keys = parse_root_keys(answer.content)
        with self._lock:
            self._keys[url] = (keys, time.monotonic() + KEYS_TTL)
        return keys


ROOT_KEYS = _RootKeys()
# Classes this process already put at Google, with what they said: a class is sent again only when
# its template changed, not once per pass.
_classes_put: dict[tuple[str, str], str] = {}


class GoogleWalletChannel(WalletChannel):
    """Passes in Google Wallet, saved through an 'Add to Google Wallet' link and kept current by the API."""

    key = KEY
    label = "Google Wallet"
    Config = GoogleWalletConfig
    Template = PassSend
    TemplateSettings = GoogleTemplateSettings
    capabilities = Capabilities(preview=True, update=True, revoke=True, webhooks=True)
    hosted = True

    def new_serial(self, ctx: ChannelContext) -> str:
        """An object id of Google's form, ``<issuerId>.<unguessable suffix>``."""
        return f"{_config(ctx).issuer_id}.{secrets.token_hex(12)}"

    def callback_url(self, ctx: ChannelContext) -> str:
        """Where Google posts the save and delete callbacks of this tenant's passes."""
        return f"{ctx.public_url.rstrip('/')}/webhooks/{ctx.tenant}/{KEY}"

    def google_pass(self, ctx: ChannelContext, rendered: RenderedPass) -> GooglePass:
        """The class and object Google gets for this pass."""
        return google_pass(
            rendered,
            issuer_id=_config(ctx).issuer_id,
            tenant=ctx.tenant,
            callback_url=self.callback_url(ctx),
            now=datetime.now(UTC),
        )

    def check_pass(self, ctx: ChannelContext, rendered: RenderedPass) -> list[Problem]:
        """What Google Wallet would refuse in this pass; empty when it can go."""
        problems = google_problems(rendered)
        if problems or not isinstance(ctx.config, GoogleWalletConfig):
            return problems
        built = self.google_pass(ctx, rendered)
        class_schema, object_schema = SCHEMAS[built.kind]
        found = schema_problems(class_schema, built.class_body) + schema_problems(
            object_schema, built.object_body
        )
        return [Problem("google", f"Google Wallet would refuse it: {text}") for text in found]

    def preview_pass(self, rendered: RenderedPass, language: str) -> Preview:
        """The pass as Google Wallet shows it, in ``language``, with a PNG of the card."""
        return preview(rendered, language)

    def publish_passes(self, ctx: ChannelContext, updates: list[PassUpdate]) -> dict[str, str]:
        """Create or update each pass's class and object at Google, and add its announcements.

        Classes go first, one call each; then the objects, ``CONCURRENCY`` calls at a time over the
        pooled connections (each call waits on Google, not on this process's CPU).
        """
        config = _config(ctx)
        where = addresses(ctx, config)
        api = WalletApi(config.account(), where.api, where.token_uri)
        built = [(update, self.google_pass(ctx, update.rendered)) for update in updates]
        failed: dict[str, str] = {}
        try:
            for one in {b.class_id: b for _, b in built}.values():
                self._put_class(api, where.api, COLLECTIONS[one.kind][0], one)
            with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
                for object_id, problem in pool.map(lambda pair: _put_object(api, *pair), built):
                    if problem is not None:
                        failed[object_id] = problem
        except GoogleApiError as exc:  # credentials, permission, Google down: no pass can go now
            raise delivery_error(exc) from exc
        return failed

    def _put_class(self, api: WalletApi, base: str, collection: str, built: GooglePass) -> None:
        said = json.dumps(built.class_body, sort_keys=True)
        if _classes_put.get((base, built.class_id)) == said:
            return
        api.put(collection, built.class_body, new=False)
        _classes_put[(base, built.class_id)] = said

    def save_url(self, ctx: ChannelContext, rendered: RenderedPass) -> str | None:
        """A freshly signed 'Save to Google Wallet' link carrying the pass's class and object."""
        config = _config(ctx)
        origins = config.origins or [_origin(ctx.public_url)]
        token = save_token(config.account(), save_payload(self.google_pass(ctx, rendered)), origins)
        return save_url(addresses(ctx, config).save, token)

    def handle_webhook(self, ctx: ChannelContext, request: WebhookRequest) -> WebhookResponse:
        """Google's save and delete callbacks, verified as Google specifies, as installs and removals."""
        if request.method != "POST":
            return WebhookResponse(status_code=405, body="Google Wallet callbacks are POSTed.")
        if not isinstance(ctx.config, GoogleWalletConfig):
            return WebhookResponse(status_code=404, body="Google Wallet is not configured for this tenant.")
        try:
            keys = ROOT_KEYS.get(addresses(ctx, ctx.config).keys)
        except (httpx.HTTPError, CallbackRefused) as exc:  # Google retries callbacks: say "later"
            return WebhookResponse(status_code=503, body=f"Google's signing keys are not available: {exc}")
        try:
            callback = verify_callback(request.body, issuer_id=ctx.config.issuer_id, root_keys=keys)
        except CallbackRefused as exc:
            return WebhookResponse(status_code=400, body=f"Callback refused: {exc}")
        outcome = pass_registry(ctx.tenant, KEY).saved(callback.object_id, callback.event_type == "save")
        return WebhookResponse(status_code=200, body=str(outcome))

    def sandbox_config(self) -> dict[str, Any] | None:
        """A TEST-ONLY service account generated at run time and a made-up issuer id: passes save in
        the sandbox, never at Google (see :mod:`tessera_wallet_google.testkeys`)."""
        from tessera_wallet_google.testkeys import test_service_account  # generates a key on first use

        return {
            "issuer_id": "3388000000022222222",
            "service_account_json": json.dumps(test_service_account()),
        }

    def sandbox_app(self) -> Any:
        """A local fake of Google's Wallet API, token endpoint, save page and callbacks."""
        return create_sandbox_app()


def _put_object(api: WalletApi, update: PassUpdate, built: GooglePass) -> tuple[str, str | None]:
    """Put one object and its announcements; the problem Google found with this pass alone, if any."""
    collection = COLLECTIONS[built.kind][1]
    try:
        api.put(collection, built.object_body, new=update.new)
        for text in update.announcements:
            _announce(api, collection, built.object_id, update.rendered.organization_name, text)
    except GoogleApiError as exc:
        if exc.status_code not in (400, 404, 409):
            raise
        error = delivery_error(exc)
        return built.object_id, f"{error.reason_code}: {error}"
    return built.object_id, None


def _announce(api: WalletApi, collection: str, object_id: str, header: str, text: str) -> None:
    """Add a notifying message; past Google's daily notification quota, the message still goes, silently."""
    message_id = f"tessera-{time.time_ns()}"
    try:
        api.add_message(
            collection, object_id, message(text, message_id=message_id, header=header, notify=True)
        )
    except GoogleApiError as exc:
        if exc.status_code != 429:
            raise
        api.add_message(
            collection, object_id, message(text, message_id=message_id, header=header, notify=False)
        )


@lru_cache(maxsize=64)
def _origin(url: str) -> str:
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}"
