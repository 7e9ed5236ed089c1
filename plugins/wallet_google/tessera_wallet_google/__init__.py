"""Tessera plugin ``wallet_google``: passes in Google Wallet."""

from __future__ import annotations

from collections.abc import Callable

from core.plugin_api import Channel, hookimpl
from tessera_wallet_google.channel import GoogleWalletChannel


@hookimpl
def register_channels(register: Callable[[Channel], None]) -> None:
    """Register the Google Wallet channel."""
    register(GoogleWalletChannel())
