"""The public plugin API: everything a plugin may import from Tessera.

A plugin writes ``from core.plugin_api import hookimpl, Channel, ...`` and nothing else from the
core. The hooks themselves are specified, with their docstrings, in :mod:`core.hookspecs`.
"""

from __future__ import annotations

import enum
import importlib
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import pluggy
from pydantic import BaseModel, ConfigDict, Field

from core.passes.contract import (
    PassBarcode,
    PassBeacon,
    PassField,
    PassFile,
    PassLocation,
    PassUpdate,
    RenderedPass,
)

if TYPE_CHECKING:
    from fastapi.telemetry import TelemetryConfig

    from core.passes.barcodes import CODE128_HEIGHT, BarcodeMatrix, barcode_image, barcode_matrix, barcode_svg
    from core.passes.drawing import draw_text, fit_text, preview_font

__all__ = [
    "CODE128_HEIGHT",
    "BarcodeMatrix",
    "PassBarcode",
    "PassBeacon",
    "PassField",
    "PassFile",
    "PassLocation",
    "PassUpdate",
    "RenderedPass",
    "barcode_image",
    "barcode_matrix",
    "barcode_svg",
    "draw_text",
    "fit_text",
    "preview_font",
]

# Pass previews' barcodes and drawing (core.passes.barcodes, core.passes.drawing), loaded on first
# use: their libraries and Pillow are slow to import, and most importers of this API (workers, the
# CLI) never draw a pass.
_PREVIEW_HELPERS = {
    **dict.fromkeys(("CODE128_HEIGHT", "BarcodeMatrix", "barcode_image", "barcode_matrix", "barcode_svg"),
                    "core.passes.barcodes"),
    **dict.fromkeys(("draw_text", "fit_text", "preview_font"), "core.passes.drawing"),
}  # fmt: skip


def __getattr__(name: str) -> Any:
    """The barcode and drawing helpers of pass previews, imported when first asked for."""
    if name in _PREVIEW_HELPERS:
        return getattr(importlib.import_module(_PREVIEW_HELPERS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


PROJECT = "tessera"
hookimpl = pluggy.HookimplMarker(PROJECT)
# ``FastAPI(telemetry=NO_TELEMETRY)``: a sandbox app (a fake provider) has nothing to trace, and
# FastAPI's native OpenTelemetry costs every request about 40 µs even with nothing exporting it.
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


# --- errors: their type says what the core does next ---------------------------------------------
class DeliveryError(Exception):
    """A delivery did not happen. ``reason_code`` is short and stable, ``str()`` says why."""

    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, reason_code: str = "error", retry_after: float | None = None):
        super().__init__(message)
        self.reason_code = reason_code
        self.retry_after = retry_after
        self.gone: list[str] = []  # wallet pushes: device tokens the provider called gone meanwhile


class TransientDeliveryError(DeliveryError):
    """Try again later (rate limit, provider unavailable). ``retry_after`` in seconds, if known."""

    retryable = True


class PermanentDeliveryError(DeliveryError):
    """Never retry: the request itself is wrong (bad address, invalid template, rejected)."""


class ChannelNotImplemented(PermanentDeliveryError):
    """The channel is registered but this operation is not built yet. Never pretends to succeed."""

    def __init__(self, channel: str, operation: str):
        super().__init__(
            f"Channel '{channel}' cannot {operation} yet: this part of the plugin is not implemented.",
            reason_code="not_implemented",
        )


# --- what a channel receives ------------------------------------------------------------------
class ProfileSnapshot(BaseModel):
    """A read-only view of one customer profile, as channels see it."""

    model_config = ConfigDict(frozen=True)

    id: str
    identifiers: dict[str, list[str]] = {}
    traits: dict[str, Any] = {}
    consents: dict[str, bool] = {}
    locale: str | None = None
    timezone: str | None = None
    # When this person last wrote to the business on the channel being sent (from the events the
    # channel reported as ``InboundMessage`` s), if ever: the start of a customer-service window.
    last_inbound_at: datetime | None = None


@dataclass(frozen=True)
class ChannelContext:
    """Everything a channel call needs about the tenant it is working for.

    ``config`` is the channel's validated ``Config`` with secrets decrypted. ``sandbox`` is True
    when the tenant runs this plugin in test mode: the channel must then send to
    ``sandbox_url`` (its own sandbox, mounted by the core) instead of the real provider.
    """

    tenant: str
    config: BaseModel | None
    sandbox: bool
    sandbox_url: str
    public_url: str


class OutboundMessage(BaseModel):
    """One message for one recipient, as the orchestration hands it to ``Channel.deliver``.

    ``address`` is the profile's address on the channel; ``profile.identifiers`` holds all of its
    live addresses of that type, ``address`` first (a channel reaching every device may use them
    all). ``open_url`` is this delivery's signed open-tracking address: whoever calls it (``GET``
    or ``POST``, no body) records the message as opened, once.
    """

    delivery_id: str
    idempotency_key: str
    profile: ProfileSnapshot
    address: str
    template: dict[str, Any]
    variables: dict[str, Any] = {}
    open_url: str | None = None


class DeliveryStatus(enum.StrEnum):
    """The shared list of delivery states every channel's statuses are normalised into."""

    sent = "sent"
    delivered = "delivered"
    read = "read"
    installed = "installed"
    removed = "removed"
    clicked = "clicked"
    failed = "failed"


class DeliveryResult(BaseModel):
    """The outcome of one message: sent with the provider's id, or failed with a reason code."""

    delivery_id: str
    status: DeliveryStatus
    provider_id: str | None = None
    reason_code: str | None = None
    detail: str | None = None
    retryable: bool = False
    retry_after: float | None = None
    # Addresses the provider says no longer exist (an uninstalled app's token): whatever the
    # status, the core stops sending to them; a later event carrying one brings it back.
    gone_addresses: list[str] = []


class ChannelEvent(BaseModel):
    """A lifecycle event a provider reported through a webhook (delivered, read, installed...)."""

    status: DeliveryStatus
    provider_id: str | None = None
    delivery_id: str | None = None
    address: str | None = None
    occurred_at: datetime | None = None
    reason_code: str | None = None
    data: dict[str, Any] = {}


@dataclass(frozen=True)
class WebhookRequest:
    """A provider's call to ``/webhooks/{tenant}/{channel}``, with the raw body for signatures."""

    method: str
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes


class InboundMessage(BaseModel):
    """A customer's own message to the business, reported by a provider's webhook.

    The core records it as a ``track`` event named by the channel's ``capabilities.inbound_event``
    on the profile that ``identifiers`` resolve to (``{"whatsapp_id": ..., "phone": ...}``; a new
    profile if none matches), so segments, journeys ("wait for a reply") and the timeline see it.
    ``message_id`` is the provider's id: a replayed webhook records nothing twice. ``opt_out``
    (the customer asked to stop) also withdraws their marketing consent on the channel.
    """

    message_id: str = Field(min_length=1, max_length=150)
    identifiers: dict[str, str] = Field(min_length=1)
    occurred_at: datetime | None = None
    properties: dict[str, Any] = {}
    opt_out: bool = False


@dataclass(frozen=True)
class WebhookResponse:
    """What to answer the provider, and what its call carried: delivery events, customers' messages."""

    status_code: int = 200
    body: str = ""
    media_type: str = "text/plain"
    events: list[ChannelEvent] = field(default_factory=list)
    inbound: list[InboundMessage] = field(default_factory=list)


@dataclass(frozen=True)
class Problem:
    """One reason a message cannot be sent to one profile, said so a marketer can fix it.

    With ``suppress`` the message is not wrong but may not go to this person now (outside a
    customer-service window, say): the delivery is suppressed with ``reason_code``, not failed.
    """

    field: str
    message: str
    suppress: bool = False
    reason_code: str | None = None


@dataclass(frozen=True)
class Suggestion:
    """A value a marketer may pick for a template field (offered, never imposed), and how it is shown."""

    value: str
    label: str


@dataclass(frozen=True)
class Preview:
    """A rendering of a template for one profile: HTML always, a PNG where it helps."""

    html: str
    png: bytes | None = None


@dataclass(frozen=True)
class Capabilities:
    """What a channel can do beyond sending; the UI and orchestration read these."""

    preview: bool = True
    update: bool = False
    revoke: bool = False
    webhooks: bool = False
    rate_limit_per_second: float | None = None
    address_identifier: str | None = None
    # The track event name customers' own messages (``WebhookResponse.inbound``) are recorded as.
    inbound_event: str | None = None


class EmptyConfig(BaseModel):
    """The config of a channel that needs none."""

    model_config = ConfigDict(extra="forbid")


class Channel:
    """A way to reach customers. Subclass it, set the class attributes, override what you can do.

    Class attributes: ``key`` (the plugin's entry-point name for a one-channel plugin: it is also
    the database value, the URL segment and the template folder), ``label`` (shown to marketers),
    ``Config`` (pydantic, ``extra="forbid"``; ``SecretStr`` fields are encrypted at rest and never
    shown back), ``Template`` (pydantic: what a marketer fills in), ``capabilities``.
    Every method receives a :class:`ChannelContext` first. The defaults refuse honestly.
    """

    key: ClassVar[str]
    label: ClassVar[str]
    Config: ClassVar[type[BaseModel]] = EmptyConfig
    Template: ClassVar[type[BaseModel]] = EmptyConfig
    capabilities: ClassVar[Capabilities] = Capabilities()

    def validate(self, ctx: ChannelContext, template: BaseModel, profile: ProfileSnapshot) -> list[Problem]:
        """Problems that would stop this template reaching this profile; empty when it can go."""
        return []

    def render_preview(self, ctx: ChannelContext, template: BaseModel, profile: ProfileSnapshot) -> Preview:
        """How the message will look for this profile."""
        raise ChannelNotImplemented(self.key, "preview")

    def suggestions(self, ctx: ChannelContext) -> dict[str, list[Suggestion]]:
        """Values to offer in the message editors, by template field (the provider's approved
        templates, say); quick, from what the plugin keeps, without calling the provider."""
        return {}

    def deliver(self, ctx: ChannelContext, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        """Send a batch; one result per message, in any order, matched by ``delivery_id``."""
        raise ChannelNotImplemented(self.key, "deliver")

    def update(self, ctx: ChannelContext, message: OutboundMessage) -> DeliveryResult:
        """Refresh a long-lived object (a pass) already delivered to this recipient."""
        raise ChannelNotImplemented(self.key, "update")

    def revoke(self, ctx: ChannelContext, message: OutboundMessage) -> DeliveryResult:
        """Withdraw a long-lived object (a pass) from this recipient."""
        raise ChannelNotImplemented(self.key, "revoke")

    def handle_webhook(self, ctx: ChannelContext, request: WebhookRequest) -> WebhookResponse:
        """Verify and translate a provider's callback into :class:`ChannelEvent` s."""
        return WebhookResponse(status_code=404, body=f"Channel '{self.key}' takes no webhooks.")

    def sandbox_config(self) -> dict[str, Any] | None:
        """Config values that work against this channel's sandbox (test credentials), or None.

        The demo configures sandboxed channels with them, so a fresh demo works end to end.
        """
        return None

    def sandbox_app(self) -> Any | None:
        """An ASGI app faking the provider (same schema, auth, errors), or None.

        The core mounts it at ``/sandbox/{tenant}/{key}`` on loopback and records every request.
        """
        return None


class WalletChannel(Channel):
    """A channel whose messages are passes living in a phone's wallet (Apple Wallet, Google Wallet).

    The core keeps the pass templates, renders each profile's pass (:class:`RenderedPass`), stores
    issued passes and device registrations, and serves download links; the wallet plugin packages,
    signs, previews and pushes. ``update`` and ``revoke`` are driven by the core through these
    methods, so a wallet plugin overrides these rather than ``deliver``.

    Two kinds of wallet: a *device* wallet (Apple) downloads a file and is told of changes by push
    (``build_pass``, ``notify_devices``); a *hosted* wallet (Google, ``hosted = True``) keeps the
    passes at its provider, which the core keeps current through ``publish_passes``, and is
    saved from ``save_url``.
    """

    hosted: ClassVar[bool] = False
    # What a template may set for this wallet alone, where the wallets' concepts differ (Google's
    # pass kind): text fields; the editor shows them, the pass carries them (``wallet_settings``).
    TemplateSettings: ClassVar[type[BaseModel]] = EmptyConfig

    def new_serial(self, ctx: ChannelContext) -> str:
        """A fresh, unguessable serial for a new pass, in the form this wallet needs."""
        return secrets.token_hex(12)

    def deliver(self, ctx: ChannelContext, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        """Issue or re-issue each message's pass (``{"pass_template": key, "notice": ...}``) to its profile."""
        registry: Any = pass_registry(ctx.tenant, self.key)
        results: list[DeliveryResult] = registry.deliver(batch)
        return results

    def check_pass(self, ctx: ChannelContext, rendered: RenderedPass) -> list[Problem]:
        """What this wallet would refuse in this pass (sizes, formats, limits); empty when it can go."""
        return []

    def build_pass(self, ctx: ChannelContext, rendered: RenderedPass) -> PassFile:
        """The pass as a signed file a phone can add to its wallet."""
        raise ChannelNotImplemented(self.key, "build passes")

    def notify_devices(self, ctx: ChannelContext, push_tokens: list[str]) -> list[str]:
        """Tell these devices that their pass changed; the tokens the provider says are gone.

        Raise a ``DeliveryError`` when some could not be told; set its ``gone`` to the tokens the
        provider called gone before that, so their registrations are still removed.
        """
        raise ChannelNotImplemented(self.key, "notify devices")

    def publish_passes(self, ctx: ChannelContext, updates: list[PassUpdate]) -> dict[str, str]:
        """Hosted wallets: create or update these passes at the provider (state, content, messages).

        Returns the serials that could not be published, each with its reason; raise a
        ``DeliveryError`` when none could (the provider is down, the credentials are refused).
        """
        raise ChannelNotImplemented(self.key, "publish passes")

    def save_url(self, ctx: ChannelContext, rendered: RenderedPass) -> str | None:
        """Hosted wallets: the link that saves this pass into the customer's wallet, or None."""
        return None

    def preview_pass(self, rendered: RenderedPass, language: str) -> Preview:
        """The pass front and back as HTML (and a PNG snapshot), its texts in ``language``."""
        raise ChannelNotImplemented(self.key, "preview passes")

    def pass_type_identifier(self, ctx: ChannelContext) -> str | None:
        """The identifier this tenant's passes carry (Apple's pass type id), or None."""
        return None

    def web_service_url(self, ctx: ChannelContext) -> str | None:
        """Where devices fetch updates of this tenant's passes (put in each pass), or None."""
        return None


class PassSend(BaseModel):
    """A send on a wallet channel: which pass template to issue (by key), and a notice to put on it."""

    model_config = ConfigDict(extra="forbid")

    pass_template: str = Field(min_length=1, max_length=60, description="The key of a pass template.")
    notice: str | None = Field(
        default=None, max_length=500, description="Shown on the lock screen of phones holding the pass."
    )


def pass_registry(tenant: str, channel: str) -> Any:
    """One tenant's issued passes of one wallet channel, for that wallet's device web service.

    The object (a :class:`core.passes.registry.PassRegistry`) registers and unregisters devices,
    lists serials changed since a tag, builds the latest signed file of a pass and keeps device
    logs, each in its own committed transaction. Raises ``ValueError`` for an unknown tenant.
    """
    from core.passes.registry import PassRegistry  # the registry needs the database; the API does not

    return PassRegistry(tenant, channel)


@contextmanager
def within_limit(key: str, limit: int, longest: float) -> Iterator[float]:
    """Hold a place among ``limit`` a second under ``key`` for the calls made inside this block, so
    that at most ``limit`` of them reach the provider within any one second, across every worker
    process, however they are held up on the way (a provider's limit per sending number, say).
    Blocks until a place is free; starts are spaced at least ``1 / limit`` s apart. ``longest``:
    the most seconds a call may take (its timeout). Gives the start granted (Unix seconds on the
    clock that schedules starts). Prefix keys with the plugin name and sender."""
    from core.delivery.arrivals import within_limit as held  # Redis and settings: loaded when first used

    with held(key, limit, longest) as start:
        yield start


def claim(key: str, every_seconds: float) -> float:
    """Claim ``key`` now if nobody did in the last ``every_seconds``: returns 0.0; otherwise the
    seconds until it can be claimed, claiming nothing (a per-recipient limit, say). Shared across
    every worker process like :func:`within_limit`."""
    from core.delivery.rates import claim as claim_slot

    return claim_slot(key, every_seconds)


def channel_context(tenant: str, channel: str) -> ChannelContext:
    """The context a call of ``channel`` gets for ``tenant`` (config with secrets opened, sandbox
    mode, URLs), for work the core does not start with one: a periodic job, a plugin route.
    Raises ``TenancyError`` for an unknown tenant or a channel the tenant has not enabled."""
    from core.db.engines import control_session  # the control database; the API does not need it
    from core.plugins import get_host
    from core.tenancy.plugin_settings import channel_context as context_of
    from core.tenancy.tenants import get_tenant

    with control_session() as control:
        return context_of(control, get_tenant(control, tenant), get_host(), channel)


def plugin_data(tenant: str, plugin: str) -> Any:
    """One plugin's own records in one tenant's database: JSON values by key.

    The object (a :class:`core.plugin_data.service.PluginData`) has ``get(key, default)``,
    ``put(key, value)``, ``delete(key)``, ``keys(prefix)`` and ``updated_at(key)``, each in its
    own committed transaction. Keep it small (synced provider lists, sync times); profile data
    belongs in identifiers, traits and events. Raises ``TenancyError`` for an unknown tenant.
    """
    from core.plugin_data.service import PluginData  # needs the database; the API does not

    return PluginData(tenant, plugin)


# --- other registrable things -----------------------------------------------------------------
@dataclass(frozen=True)
class IdentifierType:
    """A kind of identifier that points at a profile (email, phone, device token, pass serial).

    ``normalize`` returns the canonical form or raises ``ValueError`` with a readable reason.
    ``unique_per_profile``: a profile holds at most one value of this type, so two profiles with
    different values never merge. ``merges_known_profiles``: whether a shared value alone may
    merge two profiles that both already have a unique identifier. Values arrive in the
    ``traits`` and ``context.traits`` of events under ``key``, and with ``from_device_token``
    also as Segment's ``context.device.token``.
    """

    key: str
    label: str
    normalize: Callable[[str], str] = str.strip
    unique_per_profile: bool = False
    merges_known_profiles: bool = True
    # Also read from Segment's ``context.device.token`` (the device's push token) of any event.
    from_device_token: bool = False


@dataclass(frozen=True)
class SegmentConditionType:
    """A condition marketers can add to a segment rule (e.g. "has an installed wallet pass").

    ``Params`` is the pydantic model of the condition's settings. ``to_sql(params, profile_table)``
    returns a SQLAlchemy boolean expression over the profile table for batch counts;
    ``evaluate(params, profile)`` decides for one :class:`ProfileSnapshot` in real time. Both must
    agree.
    """

    key: str
    label: str
    Params: type[BaseModel]
    to_sql: Callable[[BaseModel, Any], Any]
    evaluate: Callable[[BaseModel, ProfileSnapshot], bool]


@dataclass(frozen=True)
class UIPanel:
    """A piece of HTML the UI shows in a named place (``profile``, ``settings``, ``dashboard``).

    ``render(tenant, context)`` returns HTML; ``context`` holds what the page knows (for a profile
    panel: ``{"profile": ProfileSnapshot}``). Escape what you interpolate.
    """

    key: str
    label: str
    location: str
    render: Callable[[str, dict[str, Any]], str]


@dataclass(frozen=True)
class JobType:
    """Durable background work: ``handler(tenant, payload)`` runs at least once per enqueue.

    Make handlers idempotent: a job may run again after a worker dies mid-way. With ``every``,
    the sweeper also queues it (payload ``{}``) once per such period for each tenant that
    enabled the plugin. With ``spread``, each worker process runs at most one job of such kinds
    at a time, so jobs that split one long piece of work (partitions of a backlog) land on
    different processes and use their cores side by side.
    """

    key: str
    handler: Callable[[str, dict[str, Any]], None]
    every: timedelta | None = None
    spread: bool = False
