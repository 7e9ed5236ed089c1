"""Tessera plugin ``wallet_apple``: passes in Apple Wallet."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.plugin_api import Channel, hookimpl
from tessera_wallet_apple import webservice
from tessera_wallet_apple.channel import AppleWalletChannel


@hookimpl
def register_channels(register: Callable[[Channel], None]) -> None:
    """Register the Apple Wallet channel."""
    register(AppleWalletChannel())


@hookimpl
def register_routes() -> list[Any]:
    """The PassKit web service devices call about installed passes (``/x/{tenant}/wallet_apple/v1/...``)."""
    return [webservice.router]
