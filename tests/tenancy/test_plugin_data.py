"""What a plugin reaches of a tenant outside channel calls: its own records (JSON values by key,
kept apart per plugin and tenant) and the tenant's channel context."""

from __future__ import annotations

import pytest
from tessera_whatsapp.channel import WhatsAppChannel

from core.db.engines import control_session
from core.plugin_api import channel_context, plugin_data
from core.plugins import get_host
from core.tenancy.errors import TenancyError
from core.tenancy.plugin_settings import save_channel_config, set_enabled
from core.tenancy.tenants import get_tenant


def test_a_plugin_keeps_replaces_lists_and_forgets_its_records(installation) -> None:
    installation.tenant("one")
    installation.tenant("two")
    templates = plugin_data("one", "whatsapp")
    assert templates.get("templates", []) == [] and templates.updated_at("templates") is None
    templates.put("templates", [{"name": "welcome", "status": "APPROVED"}])
    templates.put("templates", [{"name": "welcome", "status": "PAUSED"}])
    templates.put("synced_at", "2026-11-30T10:00:00+00:00")
    assert plugin_data("one", "whatsapp").get("templates") == [{"name": "welcome", "status": "PAUSED"}]
    assert plugin_data("one", "whatsapp").updated_at("templates") is not None
    assert plugin_data("one", "whatsapp").keys() == ["synced_at", "templates"]
    assert plugin_data("one", "whatsapp").keys("temp") == ["templates"]
    assert plugin_data("one", "push_fcm").get("templates") is None  # another plugin's
    assert plugin_data("two", "whatsapp").get("templates") is None  # another tenant's
    templates.delete("templates")
    templates.delete("templates")
    assert plugin_data("one", "whatsapp").keys() == ["synced_at"]


def test_an_unknown_tenant_is_refused(sqlite_installation) -> None:
    with pytest.raises(TenancyError):
        plugin_data("nobody", "whatsapp")


def test_a_plugin_gets_a_tenants_channel_context_outside_a_channel_call(sqlite_installation) -> None:
    sqlite_installation.tenant("one")
    with control_session() as control:
        tenant = get_tenant(control, "one")
        set_enabled(control, tenant, get_host(), "whatsapp", True, sandbox=True)
        save_channel_config(control, tenant, get_host(), "whatsapp", WhatsAppChannel().sandbox_config() or {})
        control.commit()
    ctx = channel_context("one", "whatsapp")
    assert ctx.tenant == "one" and ctx.sandbox and ctx.sandbox_url.endswith("/sandbox/one/whatsapp")
    assert ctx.config is not None and ctx.config.access_token.get_secret_value()  # type: ignore[attr-defined]
    with pytest.raises(TenancyError):
        channel_context("one", "push_fcm")  # not enabled for this tenant
