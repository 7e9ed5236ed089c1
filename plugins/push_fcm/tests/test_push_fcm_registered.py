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

NAME = "push_fcm"


def load_plugin() -> ModuleType:
    """The module behind this plugin's entry point."""
    (entry_point,) = entry_points(group="tessera", name=NAME)
    assert entry_point.dist is not None and entry_point.dist.name == "tessera-push-fcm"
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
    assert channel.capabilities.address_identifier == "fcm_token"


def test_deliver_refuses_honestly() -> None:
    """Nothing pretends to send: deliver raises ChannelNotImplemented (permanent, not_implemented)."""
    (channel,) = registered("register_channels")
    ctx = ChannelContext(tenant="t", config=None, sandbox=True, sandbox_url="http://x", public_url="http://x")
    with pytest.raises(ChannelNotImplemented) as caught:
        channel.deliver(ctx, [])
    assert isinstance(caught.value, PermanentDeliveryError)
    assert caught.value.reason_code == "not_implemented"


def test_fcm_token_identifier_type() -> None:
    """fcm_token is registered, never merges known profiles, and normalizes strictly."""
    (kind,) = registered("register_identifier_types")
    assert isinstance(kind, IdentifierType)
    assert (kind.key, kind.unique_per_profile, kind.merges_known_profiles) == ("fcm_token", False, False)
    assert kind.normalize("  abc:APA91b-x_y  ") == "abc:APA91b-x_y"
    for bad in ["", "   ", "abc def", "x" * 4097]:
        with pytest.raises(ValueError):
            kind.normalize(bad)


def test_config_forbids_extras_and_hides_the_key() -> None:
    """The config takes a real service-account JSON and never echoes it."""
    config_cls = load_plugin().FcmChannel.Config
    key = '{"client_email": "a@b.iam.gserviceaccount.com", "private_key": "k"}'
    config = config_cls(project_id="shop", service_account_json=key)
    assert "private_key" not in repr(config)
    with pytest.raises(ValueError):
        config_cls(project_id="shop", service_account_json=key, extra=1)
    with pytest.raises(ValueError) as caught:
        config_cls(project_id="shop", service_account_json="not json secret")
    assert "secret" not in str(caught.value)
