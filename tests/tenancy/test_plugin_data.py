"""A plugin's own records in a tenant's database: JSON values by key, kept apart per plugin and tenant."""

from __future__ import annotations

import pytest

from core.plugin_api import plugin_data
from core.tenancy.errors import TenancyError


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
