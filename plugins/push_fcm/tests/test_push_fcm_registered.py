"""The package is installed, announced under the ``tessera`` entry points, and registers honestly."""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import pluggy
import pytest
from tessera_push_fcm.testkeys import test_service_account

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


def test_deliver_is_built() -> None:
    """deliver no longer refuses as not implemented: unconfigured it says so, an empty batch is fine."""
    (channel,) = registered("register_channels")
    ctx = ChannelContext(tenant="t", config=None, sandbox=True, sandbox_url="http://x", public_url="http://x")
    with pytest.raises(PermanentDeliveryError) as caught:
        channel.deliver(ctx, [])
    assert not isinstance(caught.value, ChannelNotImplemented)
    assert caught.value.reason_code == "not_configured"
    configured = ChannelContext(
        tenant="t", config=channel.Config(**channel.sandbox_config()), sandbox=True, sandbox_url="http://x",
        public_url="http://x",
    )  # fmt: skip
    assert channel.deliver(configured, []) == []


def test_fcm_token_identifier_type() -> None:
    """fcm_token is registered, never merges known profiles, is read from Segment's device token too,
    and normalizes strictly."""
    (kind,) = registered("register_identifier_types")
    assert isinstance(kind, IdentifierType)
    assert (kind.key, kind.unique_per_profile, kind.merges_known_profiles) == ("fcm_token", False, False)
    assert kind.from_device_token is True
    assert kind.normalize("  abc:APA91b-x_y  ") == "abc:APA91b-x_y"
    for bad in ["", "   ", "abc def", "x" * 4097]:
        with pytest.raises(ValueError):
            kind.normalize(bad)


def test_config_forbids_extras_and_hides_the_key() -> None:
    """The config takes a real service-account key file (parsed) and never echoes it."""
    config_cls = load_plugin().FcmChannel.Config
    key = json.dumps(test_service_account())
    config = config_cls(project_id="shop", service_account_json=key)
    assert "PRIVATE KEY" not in repr(config) and config.concurrency == 64
    schema = config_cls.model_json_schema()["properties"]["service_account_json"]
    assert "upload" not in schema  # pasted: the settings form shows a text field
    with pytest.raises(ValueError):
        config_cls(project_id="shop", service_account_json=key, extra=1)
    for bad, said in [
        ("not json secret", "not valid JSON"),
        ('{"client_email": "a@b", "private_key": "secret-k"}', "cannot be read"),
        ('{"client_email": "a@b"}', "needs client_email and private_key"),
    ]:
        with pytest.raises(ValueError) as caught:
            config_cls(project_id="shop", service_account_json=bad)
        assert said in str(caught.value) and "secret" not in str(caught.value)
    bad_fields: list[dict[str, Any]] = [
        {"project_id": "Shop App"},
        {"concurrency": 0},
        {"api_url": "ftp://x"},
    ]
    for bad_field in bad_fields:
        with pytest.raises(ValueError):
            config_cls(**{"project_id": "shop", "service_account_json": key, **bad_field})
