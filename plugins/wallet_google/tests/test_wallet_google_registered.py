"""The package is installed, announced under the ``tessera`` entry points, and registers honestly."""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import pluggy
import pytest
from tessera_wallet_google.testkeys import test_service_account

from core.plugin_api import PROJECT, Channel, PassSend, WalletChannel

NAME = "wallet_google"
SERVICE_ACCOUNT = json.dumps(test_service_account())


def load_plugin() -> ModuleType:
    """The module behind this plugin's entry point."""
    (entry_point,) = entry_points(group="tessera", name=NAME)
    assert entry_point.dist is not None and entry_point.dist.name == "tessera-wallet-google"
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
    assert (capabilities.update, capabilities.revoke, capabilities.webhooks) == (True, True, True)


def test_it_is_a_hosted_wallet_sending_pass_templates() -> None:
    """Google keeps the passes: the core publishes them, and a send names a pass template."""
    (channel,) = registered_channels()
    assert isinstance(channel, WalletChannel) and channel.hosted
    assert channel.Template is PassSend


def test_config_validates_and_hides_secrets() -> None:
    """Issuer id is numeric, origins are origins, the key file is JSON and never echoed."""
    config_cls = load_plugin().GoogleWalletChannel.Config
    config = config_cls(
        issuer_id="3388000000012345",
        service_account_json=SERVICE_ACCOUNT,
        origins=["https://shop.example.com"],
    )
    assert "private_key" not in repr(config)
    bad_inputs: list[dict[str, Any]] = [
        {"issuer_id": "abc"},
        {"origins": ["https://shop.example.com/path"]},
        {"service_account_json": "secret-not-json"},
        {"service_account_json": json.dumps({**test_service_account(), "private_key": "secret-not-a-key"})},
        {"unknown": 1},
    ]
    for bad in bad_inputs:
        with pytest.raises(ValueError) as caught:
            config_cls(**{"issuer_id": "1", "service_account_json": SERVICE_ACCOUNT, **bad})
        assert "secret-not" not in str(caught.value)
