"""What a channel offers the message editors (``suggestions_of``): only its template's fields, and
nothing, never an error page, when the channel is not enabled or its plugin fails."""

from __future__ import annotations

import logging

import pytest
from tessera_whatsapp.channel import WhatsAppChannel

from core.db.engines import control_session
from core.messages.content import suggestions_of
from core.plugin_api import Suggestion
from core.plugins import get_host
from core.tenancy.plugin_settings import set_enabled
from core.tenancy.tenants import get_tenant

OFFERED = [Suggestion("order_update", "en_US · UTILITY")]


@pytest.fixture
def shop(sqlite_installation) -> str:
    """A tenant with WhatsApp enabled in sandbox mode."""
    sqlite_installation.tenant("shop")
    with control_session() as control:
        set_enabled(control, get_tenant(control, "shop"), get_host(), "whatsapp", True, sandbox=True)
        control.commit()
    return "shop"


def offered(tenant: str) -> dict[str, list[Suggestion]]:
    with control_session() as control:
        return suggestions_of(control, get_tenant(control, tenant), WhatsAppChannel())


def test_only_the_templates_fields_with_something_to_offer_are_kept(shop: str, monkeypatch) -> None:
    found = {"template_name": OFFERED, "language": [], "no_such_field": OFFERED}
    monkeypatch.setattr(WhatsAppChannel, "suggestions", lambda self, ctx: found)
    assert offered(shop) == {"template_name": OFFERED}


def test_a_failing_plugin_offers_nothing_and_is_logged(shop: str, monkeypatch, caplog) -> None:
    def broken(self, ctx):
        raise RuntimeError("the plugin's bug")

    monkeypatch.setattr(WhatsAppChannel, "suggestions", broken)
    with caplog.at_level(logging.ERROR, logger="core.messages.content"):
        assert offered(shop) == {}
    assert (
        "suggestions of channel whatsapp failed for shop" in caplog.text and "the plugin's bug" in caplog.text
    )


def test_a_channel_the_tenant_has_not_enabled_offers_nothing(sqlite_installation, monkeypatch) -> None:
    sqlite_installation.tenant("other")
    monkeypatch.setattr(WhatsAppChannel, "suggestions", lambda self, ctx: {"template_name": OFFERED})
    assert offered("other") == {}
