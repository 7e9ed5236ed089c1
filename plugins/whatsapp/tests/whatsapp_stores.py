"""An in-memory stand-in for ``plugin_data`` (the real one needs a tenant database).

Its own module, not the conftest: several plugins' test folders each have a ``conftest`` module,
and ``from conftest import ...`` would find another plugin's when they run in one process.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


class MemoryStore:
    """``plugin_data``'s interface over a dict (the real one needs a tenant database)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.times: dict[str, datetime] = {}

    def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default``."""
        return self.values.get(key, default)

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``."""
        self.values[key], self.times[key] = value, datetime.now(UTC)

    def delete(self, key: str) -> None:
        """Forget ``key``."""
        self.values.pop(key, None)

    def keys(self, prefix: str = "") -> list[str]:
        """The keys starting with ``prefix``."""
        return sorted(k for k in self.values if k.startswith(prefix))

    def updated_at(self, key: str) -> datetime | None:
        """When ``key`` was last written."""
        return self.times.get(key)
