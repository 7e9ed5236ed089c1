"""The package is installed, announced under the ``tessera`` entry points, and registers honestly."""

from __future__ import annotations

import base64
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import pluggy
import pytest

from core.plugin_api import PROJECT, Channel, ChannelContext, ChannelNotImplemented, PermanentDeliveryError

NAME = "wallet_apple"
GOOD: dict[str, Any] = {
    "pass_type_identifier": "pass.com.shop.loyalty",
    "team_identifier": "A1B2C3D4E5",
    "certificate_p12": base64.b64encode(b"p12 bytes").decode(),
    "certificate_password": "pw",
}


def load_plugin() -> ModuleType:
    """The module behind this plugin's entry point."""
    (entry_point,) = entry_points(group="tessera", name=NAME)
    assert entry_point.dist is not None and entry_point.dist.name == "tessera-wallet-apple"
    module: ModuleType = entry_point.load()
    return module


def registered_channels() -> list[Any]:
    """What the plugin registers through register_channels, called the way the core calls it."""
    manager = pluggy.PluginManager(PROJECT)
    manager.register(load_plugin(), name=NAME)
    found: list[Any] = []
    manager.hook.register_channels(register=found.append)
    return found


def test_entry_point_registers_one_channel_named_like_it() -> None:
    """register_channels gives one Channel whose key is the entry-point name."""
    (channel,) = registered_channels()
    assert isinstance(channel, Channel)
    assert channel.key == NAME
    capabilities = channel.capabilities
    assert (capabilities.update, capabilities.revoke, capabilities.webhooks) == (True, True, False)
    assert capabilities.address_identifier is None


def test_deliver_refuses_honestly() -> None:
    """Nothing pretends to issue a pass: deliver raises ChannelNotImplemented."""
    (channel,) = registered_channels()
    ctx = ChannelContext(tenant="t", config=None, sandbox=True, sandbox_url="http://x", public_url="http://x")
    with pytest.raises(ChannelNotImplemented) as caught:
        channel.deliver(ctx, [])
    assert isinstance(caught.value, PermanentDeliveryError)
    assert caught.value.reason_code == "not_implemented"


def test_config_validates_and_hides_secrets() -> None:
    """Identifiers follow Apple's formats; the certificate is base64 and never echoed."""
    config_cls = load_plugin().AppleWalletChannel.Config
    assert "p12 bytes" not in repr(config_cls(**GOOD))
    bad_inputs: list[dict[str, Any]] = [
        {"pass_type_identifier": "com.shop.loyalty"},
        {"team_identifier": "short"},
        {"certificate_p12": "not base64 secret!"},
        {"unknown": 1},
    ]
    for bad in bad_inputs:
        with pytest.raises(ValueError) as caught:
            config_cls(**{**GOOD, **bad})
        assert "secret!" not in str(caught.value)


def test_template_colours_are_rgb() -> None:
    """Colours are CSS rgb() strings with parts 0-255."""
    template_cls = load_plugin().AppleWalletChannel.Template
    ok = template_cls(
        organization_name="Shop", description="Loyalty card", background_color="rgb(10, 20, 255)"
    )
    assert ok.style == "storeCard"
    for bad in ["#ffffff", "rgb(256,0,0)", "rgb(1,2)"]:
        with pytest.raises(ValueError):
            template_cls(organization_name="Shop", description="Card", label_color=bad)
