"""Tessera plugin ``wallet_apple``: passes in Apple Wallet."""

from __future__ import annotations

from collections.abc import Callable

from core.plugin_api import Channel, hookimpl
from tessera_wallet_apple.channel import AppleWalletChannel


@hookimpl
def register_channels(register: Callable[[Channel], None]) -> None:
    """Register the Apple Wallet channel."""
    register(AppleWalletChannel())
