"""Tessera plugin ``push_fcm``: push notifications through Firebase Cloud Messaging."""

from __future__ import annotations

from collections.abc import Callable

from core.plugin_api import Channel, IdentifierType, hookimpl
from tessera_push_fcm.channel import FcmChannel, normalize_fcm_token
from tessera_push_fcm.message import TOKEN_TYPE


@hookimpl
def register_channels(register: Callable[[Channel], None]) -> None:
    """Register the FCM push channel."""
    register(FcmChannel())


@hookimpl
def register_identifier_types(register: Callable[[IdentifierType], None]) -> None:
    """Register ``fcm_token``: a device's FCM registration token (a profile may have many).

    Apps send it as the trait ``fcm_token`` (in ``identify`` traits or any event's
    ``context.traits``) or as Segment's ``context.device.token``.
    """
    register(
        IdentifierType(
            key=TOKEN_TYPE,
            label="FCM registration token",
            normalize=normalize_fcm_token,
            unique_per_profile=False,
            merges_known_profiles=False,
            from_device_token=True,
        )
    )
