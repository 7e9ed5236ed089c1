"""The package is installed, announced under the ``tessera`` entry points, and registers honestly."""

from __future__ import annotations

from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import pluggy
import pytest

from core.plugin_api import (
    PROJECT,
    Channel,
    ChannelContext,
    ChannelNotImplemented,
    IdentifierType,
    PermanentDeliveryError,
)

NAME = "whatsapp"


def load_plugin() -> ModuleType:
    """The module behind this plugin's entry point."""
    (entry_point,) = entry_points(group="tessera", name=NAME)
    assert entry_point.dist is not None and entry_point.dist.name == "tessera-whatsapp"
    module: ModuleType = entry_point.load()
    return module


def registered(hook: str) -> list[Any]:
    """What the plugin registers through ``hook``, called the way the core calls it."""
    manager = pluggy.PluginManager(PROJECT)
    manager.register(load_plugin(), name=NAME)
    found: list[Any] = []
    getattr(manager.hook, hook)(register=found.append)
    return found


def test_entry_point_registers_one_channel_named_like_it() -> None:
    """register_channels gives one Channel whose key is the entry-point name."""
    (channel,) = registered("register_channels")
    assert isinstance(channel, Channel)
    assert channel.key == NAME
    assert channel.capabilities.address_identifier == "whatsapp_id"


def test_deliver_refuses_honestly() -> None:
    """Nothing pretends to send: deliver raises ChannelNotImplemented (permanent, not_implemented)."""
    (channel,) = registered("register_channels")
    ctx = ChannelContext(tenant="t", config=None, sandbox=True, sandbox_url="http://x", public_url="http://x")
    with pytest.raises(ChannelNotImplemented) as caught:
        channel.deliver(ctx, [])
    assert isinstance(caught.value, PermanentDeliveryError)
    assert caught.value.reason_code == "not_implemented"


def test_whatsapp_id_identifier_type() -> None:
    """whatsapp_id is registered and normalizes to 6-15 digits."""
    (kind,) = registered("register_identifier_types")
    assert isinstance(kind, IdentifierType)
    assert (kind.key, kind.unique_per_profile, kind.merges_known_profiles) == ("whatsapp_id", False, True)
    assert kind.normalize(" +1 650-555 1234 ") == "16505551234"
    for bad in ["", "+12345", "1" * 16, "1650555abcd", "١٢٣٤٥٦٧"]:
        with pytest.raises(ValueError):
            kind.normalize(bad)
