"""The demo's channels: each enabled, sandboxed and unconfigured channel gets its test credentials.

Channels run in sandbox mode in the demo, configured with the plugin's own test values
(``Channel.sandbox_config``), so pushes, WhatsApp messages and passes go to the plugins' local
fakes of Firebase, Meta, Apple and Google without any account there.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.db.engines import control_session
from core.plugins import get_host
from core.tenancy.models import Tenant
from core.tenancy.plugin_settings import channel_config, save_channel_config, settings_of


def configure_sandboxed_channels(tenant: Tenant, keys: Iterable[str] | None = None) -> set[str]:
    """Configure ``keys`` (every channel if None) that are sandboxed and unconfigured; the usable ones.

    A channel counts as usable when it is enabled and configured, by the operator or just now.
    """
    host = get_host()
    ready = set()
    with control_session() as control:
        settings = settings_of(control, tenant)
        for key in sorted(host.channels if keys is None else keys):
            registered = host.channels.get(key)
            row = settings.get(host.owner_of_channel(key) or key)
            if registered is None or row is None or not row.enabled:
                continue
            if channel_config(control, tenant, host, key) is None:
                values = registered.item.sandbox_config() if row.sandbox else None
                if values is None:
                    continue
                save_channel_config(control, tenant, host, key, values)
            ready.add(key)
        control.commit()
    return ready


def seed_demo_channels(tenant: Tenant) -> None:
    """Give every sandboxed channel of the demo its test credentials, so its sends reach its fake."""
    configure_sandboxed_channels(tenant)
