"""Tessera plugin ``whatsapp``: template messages through Meta's WhatsApp Cloud API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from core.plugin_api import Channel, IdentifierType, JobType, UIPanel, hookimpl
from tessera_whatsapp import templates
from tessera_whatsapp.channel import WhatsAppChannel, normalize_whatsapp_id


@hookimpl
def register_channels(register: Callable[[Channel], None]) -> None:
    """Register the WhatsApp channel."""
    register(WhatsAppChannel())


@hookimpl
def register_identifier_types(register: Callable[[IdentifierType], None]) -> None:
    """Register ``whatsapp_id``: the digits of a WhatsApp account's phone number (Meta's wa_id)."""
    register(
        IdentifierType(
            key="whatsapp_id",
            label="WhatsApp id",
            normalize=normalize_whatsapp_id,
            unique_per_profile=False,
            merges_known_profiles=True,
        )
    )


@hookimpl
def register_jobs(register: Callable[[JobType], None]) -> None:
    """Register ``whatsapp.sync_templates``: re-read the business account's templates every 15 minutes."""
    register(JobType(key="whatsapp.sync_templates", handler=templates.sync_job, every=timedelta(minutes=15)))


@hookimpl
def register_ui_panels(register: Callable[[UIPanel], None]) -> None:
    """Register the settings panel listing the synced WhatsApp templates."""
    register(
        UIPanel(key="whatsapp.templates", label="WhatsApp templates", location="settings",
                render=templates.render_panel)
    )  # fmt: skip
