"""The package is installed, announced under the ``tessera`` entry points, and registers honestly."""

from __future__ import annotations

from datetime import timedelta
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import pluggy
import pytest

from core.plugin_api import (
    PROJECT,
    Channel,
    ChannelContext,
    IdentifierType,
    JobType,
    OutboundMessage,
    PermanentDeliveryError,
    ProfileSnapshot,
    UIPanel,
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


def test_deliver_without_config_refuses_permanently() -> None:
    """Delivery is built: an empty batch sends nothing; without a config it refuses (not_configured)."""
    (channel,) = registered("register_channels")
    ctx = ChannelContext(tenant="t", config=None, sandbox=True, sandbox_url="http://x", public_url="http://x")
    assert channel.deliver(ctx, []) == []
    profile = ProfileSnapshot(id="p")
    message = OutboundMessage(delivery_id="1", idempotency_key="k", profile=profile, address="1", template={})
    with pytest.raises(PermanentDeliveryError) as caught:
        channel.deliver(ctx, [message])
    assert caught.value.reason_code == "not_configured"
    assert channel.sandbox_config() is not None


def test_whatsapp_id_identifier_type() -> None:
    """whatsapp_id is registered and normalizes to 6-15 digits."""
    (kind,) = registered("register_identifier_types")
    assert isinstance(kind, IdentifierType)
    assert (kind.key, kind.unique_per_profile, kind.merges_known_profiles) == ("whatsapp_id", False, True)
    assert kind.normalize(" +1 650-555 1234 ") == "16505551234"
    for bad in ["", "+12345", "1" * 16, "1650555abcd", "١٢٣٤٥٦٧"]:
        with pytest.raises(ValueError):
            kind.normalize(bad)


def test_template_sync_job_and_settings_panel_are_registered() -> None:
    """whatsapp.sync_templates runs every 15 minutes; the settings page gets the templates panel."""
    (job,) = registered("register_jobs")
    assert isinstance(job, JobType) and (job.key, job.every) == (
        "whatsapp.sync_templates",
        timedelta(minutes=15),
    )
    (panel,) = registered("register_ui_panels")
    assert isinstance(panel, UIPanel) and (panel.key, panel.location) == ("whatsapp.templates", "settings")
