"""Plugin discovery (entry point group ``tessera``), registries, and per-tenant hook calls.

All installed plugins are loaded once per process. A plugin that fails to import, does not fit
the hook specs, or raises while registering is kept in :attr:`PluginHost.plugins` as broken,
with the reason, and contributes nothing; the core keeps running. What plugins register is then
filtered per tenant by the set of plugins that tenant enabled.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy
from pydantic import BaseModel

from core import hookspecs
from core.plugin_api import (
    PROJECT,
    Capabilities,
    Channel,
    IdentifierType,
    JobType,
    SegmentConditionType,
    UIPanel,
)

log = logging.getLogger(__name__)
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_.]{1,62}$")


class PluginRegistrationError(ValueError):
    """A plugin registered something invalid; the message names the plugin and the fix."""


@dataclass
class PluginInfo:
    """What the host knows about one installed plugin."""

    name: str
    distribution: str | None = None
    version: str | None = None
    error: str | None = None
    channels: list[str] = field(default_factory=list)

    @property
    def broken(self) -> bool:
        """True when the plugin could not be loaded or registered; it is then never called."""
        return self.error is not None


@dataclass(frozen=True)
class Registered:
    """Something a plugin registered, with the name of the plugin that owns it."""

    plugin: str
    item: Any


class PluginHost:
    """One pluggy manager plus the registries filled by the ``register_*`` hooks."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.channels: dict[str, Registered] = {}
        self.identifier_types: dict[str, Registered] = {}
        self.segment_conditions: dict[str, Registered] = {}
        self.ui_panels: dict[str, Registered] = {}
        self.jobs: dict[str, Registered] = {}
        self.routers: list[Registered] = []
        self.builtins: set[str] = set()

    # --- loading -----------------------------------------------------------------------------
    def load_entry_points(self, eps: Iterable[EntryPoint] | None = None) -> None:
        """Load every plugin announced in the ``tessera`` entry point group."""
        for ep in eps if eps is not None else entry_points(group=PROJECT):
            dist = getattr(ep, "dist", None)
            info = PluginInfo(
                name=ep.name,
                distribution=dist.metadata["Name"] if dist else None,
                version=dist.version if dist else None,
            )
            self.plugins[ep.name] = info
            try:
                module = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import failure marks the plugin broken
                self._mark_broken(info, f"failed to import {ep.value}: {exc!r}")
                continue
            self.add(module, ep.name, info)

    def add(self, plugin: object, name: str, info: PluginInfo | None = None) -> PluginInfo:
        """Register one plugin object under ``name`` and collect what it registers."""
        info = info or PluginInfo(name=name)
        self.plugins[name] = info
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except Exception as exc:  # noqa: BLE001 - e.g. pluggy.PluginValidationError
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            self._mark_broken(info, f"does not fit the hook specs: {exc}")
            return info
        try:
            self._collect(name)
        except Exception as exc:  # noqa: BLE001 - a plugin's bug must not stop the core
            detail = exc if isinstance(exc, PluginRegistrationError) else repr(exc)
            self._forget(name)
            self.pm.unregister(plugin)
            self._mark_broken(info, f"raised while registering: {detail}")
            log.debug("plugin %s traceback:\n%s", name, traceback.format_exc())
        return info

    def add_builtin(self, plugin: object, name: str) -> None:
        """Register part of the core as a plugin that every tenant always has (errors are bugs: raise)."""
        self.pm.register(plugin, name=name)
        self.pm.check_pending()
        self._collect(name)
        self.builtins.add(name)

    def _mark_broken(self, info: PluginInfo, error: str) -> None:
        info.error = error
        log.error("Plugin %r is broken and disabled: %s", info.name, error)

    def _calls(self, hook_name: str, plugin_name: str) -> list[Callable[..., Any]]:
        impls = getattr(self.pm.hook, hook_name).get_hookimpls()
        return [impl.function for impl in impls if impl.plugin_name == plugin_name]

    def _collect(self, plugin: str) -> None:
        def registrar(
            kind: str, store: dict[str, Registered], check: Callable[[Any], str]
        ) -> Callable[[Any], None]:
            def register(item: Any) -> None:
                key = check(item)
                if key in store:
                    owner = store[key].plugin
                    raise PluginRegistrationError(f"{kind} {key!r} is already registered by {owner}.")
                store[key] = Registered(plugin, item)

            return register

        hooks = {
            "register_channels": registrar("channel", self.channels, _check_channel),
            "register_identifier_types": registrar(
                "identifier type", self.identifier_types, _check_keyed(IdentifierType)
            ),
            "register_segment_conditions": registrar(
                "segment condition", self.segment_conditions, _check_keyed(SegmentConditionType)
            ),
            "register_ui_panels": registrar("UI panel", self.ui_panels, _check_keyed(UIPanel)),
            "register_jobs": registrar("job type", self.jobs, _check_keyed(JobType)),
        }
        for hook_name, register in hooks.items():
            for function in self._calls(hook_name, plugin):
                function(register)
        for function in self._calls("register_routes", plugin):
            self.routers.extend(Registered(plugin, router) for router in function() or [])
        if plugin in self.plugins:
            self.plugins[plugin].channels = sorted(k for k, r in self.channels.items() if r.plugin == plugin)

    def _forget(self, plugin: str) -> None:
        for store in (
            self.channels,
            self.identifier_types,
            self.segment_conditions,
            self.ui_panels,
            self.jobs,
        ):
            for key in [k for k, r in store.items() if r.plugin == plugin]:
                del store[key]
        self.routers = [r for r in self.routers if r.plugin != plugin]

    # --- per tenant --------------------------------------------------------------------------
    def working(self) -> list[str]:
        """Names of the plugins that loaded and registered without error."""
        return sorted(name for name, info in self.plugins.items() if not info.broken)

    def hooks_for(self, enabled: Iterable[str]) -> TenantHooks:
        """Hook callers that reach only the plugins in ``enabled`` (one tenant's choice) and the core's."""
        return TenantHooks(self.pm, frozenset(enabled) | self.builtins)

    def channels_for(self, enabled: Iterable[str]) -> dict[str, Channel]:
        """The channels of the enabled plugins, by key."""
        allowed = set(enabled)
        return {key: r.item for key, r in self.channels.items() if r.plugin in allowed}

    def owner_of_channel(self, key: str) -> str | None:
        """The plugin that registered a channel key, if any."""
        registered = self.channels.get(key)
        return registered.plugin if registered else None


class TenantHooks:
    """``hooks.on_profile_changed(...)`` calls only the plugins one tenant enabled."""

    def __init__(self, pm: pluggy.PluginManager, enabled: frozenset[str]):
        self._pm = pm
        self._remove = [plugin for name, plugin in pm.list_name_plugin() if name not in enabled]

    def __getattr__(self, hook_name: str) -> Any:
        return self._pm.subset_hook_caller(hook_name, remove_plugins=self._remove)


def _check_channel(channel: Any) -> str:
    if not isinstance(channel, Channel):
        raise PluginRegistrationError(f"register() expects a Channel instance, got {type(channel).__name__}.")
    name = type(channel).__name__
    key = getattr(channel, "key", None)
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise PluginRegistrationError(f"{name}.key must be a lower-case identifier, got {key!r}.")
    if not isinstance(getattr(channel, "label", None), str):
        raise PluginRegistrationError(f"{name}.label must be a string.")
    for attr in ("Config", "Template"):
        model = getattr(channel, attr)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise PluginRegistrationError(f"{name}.{attr} must be a pydantic model class.")
    if channel.Config.model_config.get("extra") != "forbid":
        raise PluginRegistrationError(f"{name}.Config must forbid unknown fields (extra='forbid').")
    if not isinstance(channel.capabilities, Capabilities):
        raise PluginRegistrationError(f"{name}.capabilities must be a Capabilities instance.")
    return key


def _check_keyed(kind: type[Any]) -> Callable[[Any], str]:
    def check(item: Any) -> str:
        if not isinstance(item, kind):
            raise PluginRegistrationError(f"register() expects a {kind.__name__}, got {type(item).__name__}.")
        if not KEY_PATTERN.match(item.key):
            raise PluginRegistrationError(
                f"{kind.__name__} key must be a lower-case identifier, got {item.key!r}."
            )
        return str(item.key)

    return check


_host: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, loaded from entry points on first use."""
    global _host
    if _host is None:
        from core import builtins  # late: the core's own hook implementations import services

        host = PluginHost()
        host.add_builtin(builtins, "core")
        host.load_entry_points()
        _host = host
    return _host


def reset_host() -> None:
    """Forget the loaded plugins (tests that install a plugin at run time)."""
    global _host
    _host = None
