"""Per-tenant plugin enablement and configuration, with secrets sealed at rest."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError
from sqlmodel import Session, select

from core.crypto import is_sealed, seal, unseal
from core.db.base import utcnow
from core.plugin_api import Channel, ChannelContext
from core.plugins import PluginHost
from core.settings import get_settings
from core.tenancy.errors import NotFound, TenancyError
from core.tenancy.models import PluginSetting, Tenant

SECRET_SET = "**********"


class ConfigError(TenancyError):
    """A plugin config did not validate; ``problems`` maps field names to messages."""

    def __init__(self, channel: str, problems: dict[str, str]):
        listed = "; ".join(f"{field}: {message}" for field, message in problems.items())
        super().__init__(f"Invalid configuration for channel '{channel}': {listed}")
        self.problems = problems


def secret_fields(model: type[BaseModel]) -> set[str]:
    """Names of the fields typed ``SecretStr`` (or optional ``SecretStr``)."""
    names = set()
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if annotation is SecretStr or SecretStr in typing.get_args(annotation):
            names.add(name)
    return names


def _setting(session: Session, tenant: Tenant, plugin: str) -> PluginSetting | None:
    query = select(PluginSetting).where(PluginSetting.tenant_id == tenant.id, PluginSetting.plugin == plugin)
    return session.exec(query).first()


def enabled_plugins(session: Session, tenant: Tenant, host: PluginHost) -> set[str]:
    """Names of the plugins this tenant enabled that are installed and working, plus the core's own."""
    query = select(PluginSetting.plugin).where(PluginSetting.tenant_id == tenant.id, PluginSetting.enabled)
    working = set(host.working())
    return {name for name in session.exec(query) if name in working} | host.builtins


def settings_of(session: Session, tenant: Tenant) -> dict[str, PluginSetting]:
    """Every plugin setting row of a tenant, by plugin name."""
    query = select(PluginSetting).where(PluginSetting.tenant_id == tenant.id)
    return {row.plugin: row for row in session.exec(query)}


def set_enabled(
    session: Session,
    tenant: Tenant,
    host: PluginHost,
    plugin: str,
    enabled: bool,
    sandbox: bool | None = None,
) -> PluginSetting:
    """Enable or disable an installed plugin for a tenant (optionally choosing sandbox mode)."""
    info = host.plugins.get(plugin)
    if info is None:
        known = ", ".join(sorted(host.plugins)) or "none"
        raise NotFound(f"Unknown plugin {plugin!r}; installed plugins: {known}.")
    if enabled and info.broken:
        raise TenancyError(f"Plugin {plugin!r} is broken and cannot be enabled: {info.error}")
    assert tenant.id is not None
    row = _setting(session, tenant, plugin) or PluginSetting(tenant_id=tenant.id, plugin=plugin)
    row.enabled = enabled
    if sandbox is not None:
        row.sandbox = sandbox
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    return row


def save_channel_config(
    session: Session, tenant: Tenant, host: PluginHost, channel_key: str, values: dict[str, Any]
) -> PluginSetting:
    """Validate and store a channel's config. A blank secret keeps the stored one (write-only)."""
    channel = _channel(host, channel_key)
    plugin = host.owner_of_channel(channel_key)
    assert plugin is not None and tenant.id is not None
    row = _setting(session, tenant, plugin) or PluginSetting(
        tenant_id=tenant.id, plugin=plugin, enabled=False
    )
    stored = dict(row.config.get(channel_key, {}))
    secrets = secret_fields(channel.Config)
    merged = dict(values)
    for name in secrets:
        if merged.get(name) not in (None, ""):
            continue
        if stored.get(name) is not None:
            merged[name] = unseal(stored[name])  # omitted or blank: keep the stored secret
        else:
            merged.pop(name, None)  # a blank secret is a missing one, not an empty one
    try:
        model = channel.Config.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(channel_key, _problems(exc)) from exc
    stored_values = model.model_dump(mode="json")
    for name in secrets:
        secret = getattr(model, name)
        stored_values[name] = seal(secret.get_secret_value()) if secret is not None else None
    row.config = {**row.config, channel_key: stored_values}
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    return row


def _problems(exc: ValidationError) -> dict[str, str]:
    return {
        ".".join(str(p) for p in err["loc"]) or "config": err["msg"].removeprefix("Value error, ")
        for err in exc.errors()
    }


def channel_config(session: Session, tenant: Tenant, host: PluginHost, channel_key: str) -> BaseModel | None:
    """The channel's validated config with secrets opened, or None if not configured yet."""
    channel = _channel(host, channel_key)
    plugin = host.owner_of_channel(channel_key)
    row = _setting(session, tenant, plugin or "")
    if row is None or channel_key not in row.config:
        return None
    raw = {k: unseal(v) if is_sealed(v) else v for k, v in row.config[channel_key].items()}
    try:
        return channel.Config.model_validate(raw)
    except ValidationError as exc:  # valid when saved, no longer (a certificate expired since)
        raise ConfigError(channel_key, _problems(exc)) from exc


def public_config(session: Session, tenant: Tenant, host: PluginHost, channel_key: str) -> dict[str, Any]:
    """The stored config as the UI and API may show it: a stored secret reads as ``SECRET_SET``."""
    plugin = host.owner_of_channel(channel_key)
    row = _setting(session, tenant, plugin or "")
    stored = row.config.get(channel_key, {}) if row else {}
    return {k: (SECRET_SET if is_sealed(v) else v) for k, v in stored.items()}


def channel_context(session: Session, tenant: Tenant, host: PluginHost, channel_key: str) -> ChannelContext:
    """The context a channel call gets for this tenant: config, sandbox mode and URLs."""
    plugin = host.owner_of_channel(channel_key)
    row = _setting(session, tenant, plugin or "")
    if row is None or not row.enabled or plugin not in host.working():
        raise TenancyError(
            f"Channel '{channel_key}' is not enabled for this tenant: enable it under Settings > Plugins."
        )
    public_url = get_settings().public_url.rstrip("/")
    return ChannelContext(
        tenant=tenant.slug,
        config=channel_config(session, tenant, host, channel_key),
        sandbox=row.sandbox,
        sandbox_url=f"{public_url}/sandbox/{tenant.slug}/{channel_key}",
        public_url=public_url,
    )


def _channel(host: PluginHost, channel_key: str) -> Channel:
    registered = host.channels.get(channel_key)
    if registered is None:
        raise NotFound(f"Unknown channel {channel_key!r}.")
    channel: Channel = registered.item
    return channel
