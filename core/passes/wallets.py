"""Reaching a tenant's wallet channel: the plugin's channel object and its context for the tenant."""

from __future__ import annotations

from dataclasses import dataclass

from core.db.engines import control_session
from core.plugin_api import ChannelContext, WalletChannel
from core.plugins import get_host
from core.tenancy.errors import TenancyError
from core.tenancy.models import Tenant
from core.tenancy.plugin_settings import channel_context


class WalletUnavailable(TenancyError):
    """The wallet channel is not installed, not a wallet, or not enabled for the tenant."""


@dataclass(frozen=True)
class Wallet:
    """A wallet channel as one tenant uses it."""

    channel: WalletChannel
    ctx: ChannelContext


def wallet_channels() -> dict[str, WalletChannel]:
    """Every installed wallet channel by key."""
    host = get_host()
    return {key: found.item for key, found in host.channels.items() if isinstance(found.item, WalletChannel)}


def wallet_for(tenant: Tenant, channel_key: str) -> Wallet:
    """The wallet channel ``channel_key`` for this tenant, or :class:`WalletUnavailable` saying why."""
    channel = wallet_channels().get(channel_key)
    if channel is None:
        raise WalletUnavailable(f"{channel_key!r} is not an installed wallet channel.")
    with control_session() as control:
        try:
            ctx = channel_context(control, tenant, get_host(), channel_key)
        except TenancyError as exc:
            raise WalletUnavailable(str(exc)) from exc
    if ctx.config is None:
        raise WalletUnavailable(
            f"{channel.label} is not configured: add its credentials under Settings > Plugins."
        )
    return Wallet(channel, ctx)
