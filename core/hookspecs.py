"""The whole plugin contract: every hook Tessera calls, with what it is for.

A plugin is an importable module (or object) of functions marked ``@hookimpl`` and named exactly
as below, announced by an entry point in the group ``tessera``::

    [project.entry-points.tessera]
    my_channel = "tessera_my_channel"

An implementation may accept fewer arguments than its spec, never more. Hooks only grow (new
arguments, new hooks); nothing here is renamed or removed. ``register_*`` hooks are called once
at start-up for every installed plugin; what a plugin registers is only ever used for the tenants
that enabled it. ``on_*`` hooks are called per tenant, and only on the plugins that tenant enabled.
A plugin that raises in a ``register_*`` hook is marked broken and ignored; the core keeps running.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

from core.plugin_api import (
    PROJECT,
    Channel,
    IdentifierType,
    JobType,
    ProfileSnapshot,
    SegmentConditionType,
    UIPanel,
)

hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def register_channels(register: Callable[[Channel], None]) -> None:
    """Register the channels this plugin provides.

    Call ``register(channel)`` once per channel with an instance of a :class:`core.plugin_api.Channel`
    subclass. A channel's ``key`` must be unique across all plugins and is, by convention, the
    plugin's entry-point name. The core validates the class attributes (``key``, ``label``,
    ``Config``, ``Template``, ``capabilities``) at start-up and marks the plugin broken, with the
    reason, if one is wrong. The channel's methods (``validate``, ``render_preview``, ``deliver``,
    ``update``, ``revoke``, ``handle_webhook``, ``sandbox_app``) are then called by the core,
    each with a ``ChannelContext`` for the tenant on whose behalf it works. Raise
    ``TransientDeliveryError`` (the core retries with backoff, honouring ``retry_after``) or
    ``PermanentDeliveryError`` (kept with its ``reason_code``); the core owns queues and retries.
    """


@hookspec
def register_identifier_types(register: Callable[[IdentifierType], None]) -> None:
    """Register kinds of identifier that resolve to a profile (device tokens, WhatsApp ids...).

    Call ``register(IdentifierType(key=..., label=..., normalize=..., unique_per_profile=...,
    merges_known_profiles=...))``. ``normalize`` turns a raw value into its canonical form and
    raises ``ValueError`` with a readable reason for an invalid one. Keys are unique across
    plugins and the core's own (``email``, ``phone``, ``user_id``, ``anonymous_id``).
    """


@hookspec
def register_segment_conditions(register: Callable[[SegmentConditionType], None]) -> None:
    """Register condition types marketers can use in segment rules.

    Call ``register(SegmentConditionType(key=..., label=..., Params=..., to_sql=..., evaluate=...))``.
    ``to_sql`` builds the SQL form for batch counts and lists, ``evaluate`` the in-memory form for
    real-time entry and exit of one profile; they must give the same answer for every profile.
    """


@hookspec
def register_jobs(register: Callable[[JobType], None]) -> None:
    """Register durable background job types.

    Call ``register(JobType(key="my_plugin.refresh", handler=fn))``. Work of this type is written
    to the tenant database before it is queued and is re-run after a crash, so ``handler(tenant,
    payload)`` must be idempotent. Prefix keys with the plugin name.
    """


@hookspec
def register_routes() -> list[Any]:
    """Return FastAPI ``APIRouter`` s for public endpoints this plugin serves.

    Each router is mounted under ``/x/{tenant}/{plugin}``, behind a check that the tenant exists
    and enabled the plugin (404 otherwise), so a handler reads the tenant from the path parameter
    ``tenant``. Use it for provider-facing services (e.g. the Apple PassKit web service); use
    ``Channel.handle_webhook`` for plain delivery callbacks.
    """
    return []  # a specification only: pluggy calls the plugins' implementations, never this body


@hookspec
def register_ui_panels(register: Callable[[UIPanel], None]) -> None:
    """Register pieces of UI the core shows in named places (``profile``, ``settings``, ``dashboard``).

    Call ``register(UIPanel(key=..., label=..., location=..., render=...))``; ``render(tenant,
    context)`` returns escaped HTML and is only called for tenants that enabled the plugin.
    """


@hookspec
def on_profile_changed(tenant: str, profile: ProfileSnapshot, changed: list[str]) -> None:
    """React to a change of one profile in one tenant (e.g. re-issue a pass bound to a trait).

    ``changed`` names what changed: trait keys, ``"identifiers"``, ``"consents"``, or loyalty keys
    (``"loyalty.balance"``). Called after the change is committed, only on plugins enabled for
    ``tenant``. Do slow work by enqueueing a job rather than in the hook.
    """


@hookspec
def on_plugin_enabled(tenant: str) -> None:
    """The tenant just enabled this plugin (prepare its data, e.g. seed default templates)."""


@hookspec
def on_plugin_disabled(tenant: str) -> None:
    """The tenant just disabled this plugin. Nothing of this plugin is called for it after this."""
