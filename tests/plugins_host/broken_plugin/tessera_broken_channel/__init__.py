"""A plugin whose import fails, as when a partner's package misses a dependency or a setting."""

from core.plugin_api import hookimpl  # noqa: F401 - a real plugin would go on to use it

IMPORT_ERROR = "tessera-broken-channel cannot start: the provider SDK 'samplesdk' is not installed"

raise RuntimeError(IMPORT_ERROR)
