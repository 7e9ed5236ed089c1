"""Tessera plugin ``whatsapp``: template messages through Meta's WhatsApp Cloud API."""

from __future__ import annotations

from collections.abc import Callable

from core.plugin_api import Channel, IdentifierType, hookimpl
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
